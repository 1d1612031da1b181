"""The decoder serving model: sizes read from the graph, laws of the serving estimate."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.serving.collectives import all_reduce_seconds, send_seconds
from npuc.compiler.serving.decoder import (
    RESERVE,
    Precisions,
    Workload,
    memory_plan,
    plan,
    serve,
)
from npuc.compiler.serving.profile import decoder_profile, is_decoder, load_proto
from npuc.ir.errors import NpucError
from npuc.targets import get_target

RNGD = get_target("rngd")
FP8 = Precisions("fp8", "bf16")


@pytest.fixture(scope="module")
def llama8b():
    return decoder_profile(load_proto("zoo:llama3.1-8b"), "llama3.1-8b")


@pytest.fixture(scope="module")
def llama70b():
    return decoder_profile(load_proto("zoo:llama3.1-70b"), "llama3.1-70b")


def test_profile_reads_sizes_from_the_graph(llama8b):
    assert llama8b.parameters == 8_030_261_248
    assert (llama8b.layers, llama8b.kv_heads, llama8b.head_dim, llama8b.hidden) == \
        (32, 8, 128, 4096)
    # everything but the embedding table is multiplied by every token
    assert llama8b.matmul_parameters == llama8b.parameters - 128256 * 4096 - 65 * 4096
    # Q K^T and P V: 2 x heads x head_dim MACs per query and context position, per layer
    assert llama8b.attention_macs_per_pair == 32 * 2 * 32 * 128
    assert llama8b.kv_elements_per_token == 2 * 32 * 8 * 128


def test_tied_head_is_counted_through_its_transpose():
    p = decoder_profile(load_proto("zoo:llama3.2-1b"))
    assert p.matmul_parameters > p.parameters - p.embedding_parameters


def test_vision_models_are_not_decoders():
    assert not is_decoder(load_proto("zoo:resnet-tiny"))
    assert is_decoder(load_proto("zoo:decoder-tiny"))


def test_memory_is_what_is_left_after_the_weights(llama8b):
    m = memory_plan(llama8b, RNGD, FP8, Workload(128, 4096), 1, 1)
    assert m["weight_bytes_per_chip"] == llama8b.parameters  # one byte each at fp8
    assert m["kv_bytes_per_token_per_chip"] == 2 * 32 * 8 * 128 * 2
    budget = RNGD.memory.dram_bytes * (1 - RESERVE) - llama8b.parameters
    assert m["max_sequences"] == int(budget // (131072 * (128 + 2048)))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 133), st.integers(1, 133))
def test_more_sequences_never_lower_throughput_nor_latency(llama8b, a, b):
    lo, hi = sorted((a, b))
    work = Workload(128, 4096)
    x, y = serve(llama8b, RNGD, FP8, work, sequences=lo), serve(llama8b, RNGD, FP8, work,
                                                                 sequences=hi)
    assert y["output_tokens_per_s"] >= x["output_tokens_per_s"] * (1 - 1e-12)
    assert y["time_per_output_token_s"] >= x["time_per_output_token_s"]


def test_a_70b_model_needs_several_cards_and_tensor_parallel_pays_all_reduces(llama70b):
    work = Workload(2048, 128)
    with pytest.raises(NpucError, match="does not fit 1 x rngd"):
        plan(llama70b, RNGD, FP8, work, chips=1)
    tp8 = plan(llama70b, RNGD, FP8, work, chips=8, tp=8)
    assert (tp8["tp"], tp8["pp"], tp8["dp"]) == (8, 1, 1)
    assert tp8["stage"]["all_reduce_s"] > 0
    assert tp8["kv_bytes_per_token_per_chip"] == 2 * 80 * 8 * 128 * 2 / 8
    best = plan(llama70b, RNGD, FP8, work, chips=8)
    assert best["output_tokens_per_s"] >= tp8["output_tokens_per_s"]
    assert {(p["tp"], p["pp"]) for p in best["plans"]} >= {(1, 2), (2, 4), (8, 1)}


def test_a_latency_target_is_met_by_fewer_sequences(llama8b):
    work = Workload(128, 4096)
    free = plan(llama8b, RNGD, FP8, work)
    tight = plan(llama8b, RNGD, FP8, work, latency_target=free["time_per_output_token_s"] / 2)
    assert tight["time_per_output_token_s"] <= free["time_per_output_token_s"] / 2
    assert tight["sequences"] < free["sequences"]


def test_ring_all_reduce_and_send_are_priced_from_the_link():
    link = RNGD.link
    assert all_reduce_seconds(RNGD, 8e6, 1) == 0.0
    expected = 2 * 3 * (link.latency_s + 8e6 / 4 / link.bandwidth_bytes_per_s)
    assert all_reduce_seconds(RNGD, 8e6, 4) == pytest.approx(expected)
    assert send_seconds(RNGD, 1e6) == pytest.approx(link.latency_s + 1e6 / 63e9)
    with pytest.raises(NpucError, match="declares no chip-to-chip link"):
        all_reduce_seconds(get_target("cpu"), 1e6, 2)


def test_cards_for_a_load_are_whole_replicas():
    from npuc.compiler.serving.capacity import cards, energy_joules

    assert cards(100.0, 30.0) == 4
    assert cards(90.0, 30.0) == 3
    assert cards(90.0, 30.0, chips_per_replica=2) == 6
    assert energy_joules(RNGD, 2, 300.0) == pytest.approx(150 * 2 / 300)
    assert energy_joules(get_target("cpu"), 1, 10.0) is None
    assert math.isclose(cards(1e-3, 30.0), 1)

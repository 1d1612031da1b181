"""An fp8 decoder's KV cache stored in fp8 e4m3 with one scale per cache: a quarter of the
float32 bytes, the same scale in every program of the artifact, and the programs still
bit-identical to their graphs."""

import ml_dtypes
import numpy as np
import pytest

from npuc.compiler.decoder_artifact import compile_decoder
from npuc.compiler.driver import compile
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.executor.simulator import simulate

MAX_SEQ = 8


def _steps(result, count=3):
    """Decode ``count`` tokens through the simulated program (its cache in DRAM) and the
    graph (float32 caches passed by name); both logits per step."""
    program = result.program
    dram = np.zeros(program["memory"]["dram_bytes"], np.uint8)
    caches = {t["input"]: np.zeros(t["shape"], np.float32) for t in program["state"]["tensors"]}
    out = []
    for position, token in enumerate([3, 17, 5][:count]):
        mask = np.zeros((1, MAX_SEQ), np.int64)
        mask[:, :position + 1] = 1
        feeds = {"input_ids": np.array([[token]]), "attention_mask": mask,
                 "position_ids": np.array([[position]]),
                 "cache_position": np.array([position])}
        got = simulate(program, result.weights, feeds, dram=dram)["logits"]
        want = execute(result.graph, {**feeds, **caches})
        for t in program["state"]["tensors"]:
            caches[t["input"]] = want[t["name"]]
        out.append((got, want["logits"], dram))
    return out


@pytest.fixture(scope="module")
def decode():
    return compile("zoo:llama-tiny-decode", "rngd", quantize="fp8", max_seq=MAX_SEQ)


def test_the_cache_is_stored_in_fp8_and_the_program_matches_its_graph(decode):
    state = decode.program["state"]
    assert all(t["dtype"] == "f8e4m3" and t["scale"] > 0 for t in state["tensors"])
    assert state["bytes"] == 4 * 2 * MAX_SEQ * 16  # one byte per element
    steps = _steps(decode)
    for got, want, _ in steps:
        assert np.array_equal(got, want)
    # the DRAM holds fp8 of the keys over their scale, written at their positions
    dram = steps[-1][2]
    t = state["tensors"][0]
    held = dram[t["offset"]:t["offset"] + int(np.prod(t["shape"]))]
    values = held.view(ml_dtypes.float8_e4m3fn).astype(np.float32).reshape(t["shape"])
    assert np.abs(values[:, :, :3]).min() > 0 and not values[:, :, 3:].any()


def test_a_given_scale_is_what_the_readers_use(decode):
    given = {t["name"]: 2 * t["scale"] for t in decode.program["state"]["tensors"]}
    other = compile("zoo:llama-tiny-decode", "rngd", quantize="fp8", max_seq=MAX_SEQ,
                    cache_scales=given)
    assert {t["name"]: t["scale"] for t in other.program["state"]["tensors"]} == given
    rescaled = [n for n in other.graph.nodes if n.op_type == "QuantizeLinear" and
                n.inputs[1].name.endswith("/cache_scale")]
    assert len(rescaled) == 4
    for got, want, _ in _steps(other):
        assert np.array_equal(got, want)


def test_every_program_of_an_fp8_artifact_shares_each_cache_scale():
    built = compile_decoder("zoo:llama-tiny", "rngd", 10, quantize="fp8", decode_batch="1,2")
    layouts = [[(t["dtype"], t["scale"]) for t in p["state"]["tensors"]]
               for p in built.programs]
    assert all(layout == layouts[0] for layout in layouts)
    assert all(dtype == "f8e4m3" for dtype, _ in layouts[0])
    assert built.manifest["kv_cache"]["bytes"] == 2 * 4 * 2 * 10 * 16

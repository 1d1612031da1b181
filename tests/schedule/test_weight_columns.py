"""Weights larger than the SRAM are streamed a slice of columns at a time: every matrix
op of a decoder stays on the chip, and the program computes exactly what the IR does."""

import dataclasses

import numpy as np
import pytest

import npuc
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.executor.simulator import simulate
from npuc.targets import get_target


@pytest.fixture(scope="module")
def small_rngd():
    """rngd with 24 KB of SRAM: llama-tiny's lm_head (32 KB in bf16) does not fit whole."""
    rngd = get_target("rngd")
    return dataclasses.replace(rngd, memory=dataclasses.replace(rngd.memory, sram_bytes=24000))


@pytest.mark.parametrize("precision", ["bf16", "fp8"])
def test_matrix_weights_split_along_columns(small_rngd, precision):
    r = npuc.compile("zoo:llama-tiny", small_rngd, quantize=precision)
    graph = r.graph
    by_name = {n.name: n for n in graph.nodes}

    def weighted(node):
        if node.op_type not in ("MatMul", "FusedMatMul", "GatedMLP"):
            return False
        w = node.inputs[1]
        return w.const is not None or w.producer.op_type == "DequantizeLinear"

    matrix = [g for g in r.schedule.groups if any(weighted(by_name[n]) for n in g.nodes)]
    assert len(matrix) >= 2 * 6 + 1 and all(g.device == "npu" for g in matrix)
    head = r.schedule.group_of("/lm_head/MatMul")
    assert head.device == "npu" and head.tile.axis == 2 and head.tile.count > 1
    assert r.summary["sram_peak_bytes"] <= 24000
    # the embedding's rows are gathered from the weights, the table is never loaded
    embed = r.schedule.group_of("/model/embed_tokens/Gather")
    assert embed.device == "npu"
    table = by_name["/model/embed_tokens/Gather"].inputs[0].name
    assert not any(c["op"] == "dma_load" and c["src"]["tensor"] == table
                   for c in r.program["commands"])
    gather = next(c for c in r.program["commands"] if c.get("node") == embed.nodes[0])
    assert gather["engine"] == "dma" and gather["inputs"][0]["space"] == "weights"
    feeds = npuc.zoo.sample_inputs(r.proto)
    got, want = simulate(r.program, r.weights, feeds), execute(graph, feeds)
    np.testing.assert_array_equal(got["logits"], want["logits"])

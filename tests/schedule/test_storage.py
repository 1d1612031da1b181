"""Weights at the compiled precision: bf16 and fp16 programs store their weights in two
bytes (blob, SRAM, DRAM) and still compute exactly what the IR computes."""

import numpy as np
import pytest

import npuc
from npuc.compiler.driver import compare, compile
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.executor.simulator import simulate
from npuc.compiler.schedule.storage import mark_storage
from npuc.ir.graph import Graph
from npuc.ir.types import tensor


@pytest.mark.parametrize("target,precision", [("rngd", "bf16"), ("atom", "fp16")])
def test_weights_are_stored_at_the_compiled_precision(target, precision):
    r = compile("zoo:llama-tiny", target, quantize=precision)
    graph = r.graph
    narrow = [v for v in graph.constants.values() if v.meta.get("stored")]
    matmul_weights = {n.inputs[1].name for n in graph.nodes
                      if n.op_type in ("MatMul", "FusedMatMul", "GatedMLP")
                      and n.inputs[1].const is not None}
    assert matmul_weights and matmul_weights <= {v.name for v in narrow}
    wide = sum(v.const.nbytes for v in graph.constants.values())
    stored = sum(v.const.nbytes // (2 if v.meta.get("stored") else 1)
                 for v in graph.constants.values())
    assert len(r.weights) < 0.6 * wide and len(r.weights) >= stored
    refs = [c["src"] for c in r.program["commands"] if c["op"] == "dma_load"
            and c["src"]["space"] == "weights" and c["src"].get("stored")]
    assert refs and all(c["stored"] in ("bf16", "f16") for c in refs)
    feeds = npuc.zoo.sample_inputs(r.proto)
    got, want = simulate(r.program, r.weights, feeds), execute(graph, feeds)
    assert compare(got["logits"], want["logits"])["sqnr_db"] == 200.0


def test_only_exact_constants_are_narrowed():
    g = Graph()
    exact = g.add_constant("exact", np.array([1.0, 0.5, -2.0, 3.0], np.float32))
    inexact = g.add_constant("inexact", np.array([0.1, 0.2], np.float32))
    ints = g.add_constant("ints", np.array([1, 2], np.int64))
    x = g.add_input("x", tensor("f32", [4]))
    g.create_node("Add", [x, exact], [("y", tensor("f32", [4]))])
    assert mark_storage(g, "bf16") == 8
    assert exact.meta["stored"] == "bf16"
    assert "stored" not in inexact.meta and "stored" not in ints.meta
    assert mark_storage(g, "fp32") == 0 and "stored" not in exact.meta


def test_fp8_embedding_table_is_stored_in_the_chips_16_bit_format():
    r = compile("zoo:llama-tiny", "rngd", quantize="fp8")
    gathers = [n for n in r.graph.nodes if n.op_type == "Gather" and n.inputs[0].const is not None]
    assert gathers and all(n.inputs[0].meta.get("stored") == "bf16" for n in gathers)
    table = gathers[0].inputs[0].const
    assert not np.any(table.view(np.uint32) & 0xFFFF)  # every value a bf16 number
    feeds = npuc.zoo.sample_inputs(r.proto)
    got, want = simulate(r.program, r.weights, feeds), execute(r.graph, feeds)
    assert compare(got["logits"], want["logits"])["sqnr_db"] == 200.0
    assert mark_storage(Graph(), "fp8") == 0

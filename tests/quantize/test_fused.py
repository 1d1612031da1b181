"""The optimizer's fused operators quantized: integer ops on int8 chips, rounded inputs at
bf16, and nothing left in float on the NPU of a chip that computes only in int8."""

import ml_dtypes
import numpy as np
import pytest

import npuc
import npuc.compiler.driver as driver
import npuc.compiler.pipeline as pipeline
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.quantize import quantize, sqnr
from npuc.compiler.schedule.prepare import load_static
from npuc.ir.decisions import log_of

HEAVY = {"Conv", "Gemm", "MatMul", "FusedConv", "FusedGemm", "FusedMatMul", "Attention"}


def _optimized(name):
    g, _ = load_static(f"zoo:{name}", 1)
    return pipeline.optimize_graph(g, 2)


def _cal(name, n=3):
    return [npuc.zoo.sample_inputs(name, batch=1, seed=s) for s in range(n)]


@pytest.mark.parametrize("name", ["resnet-tiny", "mobilenetv2-tiny", "bert-tiny"])
def test_fused_ops_become_integer_ops(name):
    g = _optimized(name)
    assert any(n.op_type.startswith("Fused") for n in g.nodes)
    q = quantize(g, "warboy-2pe", _cal(name), progress=False)
    assert not [n.describe() for n in q.nodes if n.op_type in HEAVY]
    ev = npuc.zoo.sample_inputs(name, batch=1, seed=99)
    want, got = execute(g, ev), execute(q, ev)
    for k in want:
        assert sqnr(want[k], got[k]) > 20


def test_relu6_is_the_clamp_of_the_qconv():
    g = _optimized("mobilenetv2-tiny")
    assert any(n.attrs.get("activation") == "Clip" for n in g.nodes)
    q = quantize(g, "warboy-2pe", _cal("mobilenetv2-tiny"), progress=False)
    assert not [n for n in q.nodes if n.op_type in ("Clip", "Relu", "Lut")]
    clamped = [n for n in q.nodes if n.op_type == "QConv" and
               n.attrs["qmin"] == n.attrs["y_zero_point"]]  # the lower bound 0 of Relu6
    assert clamped


def test_gelu_is_one_table_after_the_matmul():
    g = _optimized("bert-tiny")
    q = quantize(g, "warboy-2pe", _cal("bert-tiny"), progress=False)
    luts = [n for n in q.nodes if n.op_type == "Lut"]
    gelu = [n for n in luts if n.inputs[0].producer is not None and
            n.inputs[0].producer.op_type == "QMatMul" and "intermediate" in n.name]
    assert gelu, [n.name for n in luts]


def test_bf16_rounds_fused_matmuls():
    g = _optimized("bert-tiny")
    q = quantize(g, "rngd", progress=False)
    rounded = [n for n in q.nodes if n.op_type == "FusedMatMul"]
    assert rounded and all(n.inputs[0].producer.op_type == "Cast" for n in rounded)
    ev = npuc.zoo.sample_inputs("bert-tiny", batch=1, seed=5)
    want, got = execute(g, ev), execute(q, ev)
    for k in want:
        assert 30 < sqnr(want[k], got[k]) < 100  # rounded, not float32 in disguise
    w = rounded[0].inputs[1].const
    assert np.array_equal(w, w.astype(ml_dtypes.bfloat16).astype(np.float32))


def test_float_nodes_of_an_int8_only_chip_run_on_the_cpu():
    r = driver.compile("zoo:bert-tiny", "warboy-2pe", calibration="random:2")
    floats = [g for g in r.schedule.groups if g.device == "cpu"]
    assert floats
    for g in floats:
        assert "operator" in g.reason or g.reason.startswith(
            "warboy-2pe computes only in int8; this node stays in float because")
    cpu = {n for g in floats for n in g.nodes}
    for node in r.graph.nodes:
        if node.op_type in ("LayerNormalization", "Softmax"):
            assert node.name in cpu
    assert any(d.stage == "partition" and "stays in float" in d.reason
               for d in log_of(r.graph))


def test_unquantized_graph_keeps_the_operator_table():
    # --quantize none is estimated as if quantized: the table decides, not the float types
    r = driver.compile("zoo:resnet-tiny", "warboy-2pe", quantize="none")
    assert all("stays in float" not in g.reason for g in r.schedule.groups)


def _unfused(g):
    """``g`` with every fused operator written as its parts (what the quantizer once
    split FusedConv into before re-absorbing the clamp)."""
    from npuc.compiler.ops.fused import BASE, split_epilogue
    from npuc.compiler.passes.pattern import Match
    from npuc.compiler.passes.rewrite import Rule, apply_rules

    class Split(Rule):
        roots = tuple(BASE)

        def match(self, node):
            if node.domain == "npuc" and node.op_type in BASE:
                yield Match(node, covered=[(node, True)])

        def rewrite(self, m, b):
            return split_epilogue(m.root, b)

    g = g.copy()
    apply_rules(g, [Split()], "test")
    return g


@pytest.mark.parametrize("name", ["resnet-tiny", "mobilenetv2-tiny"])
def test_a_fused_clamp_quantizes_as_its_parts_did(name):
    """A FusedConv with Relu or Clip is quantized whole (no split and re-absorb), and gives
    the int8 program its Conv and clamp written apart give, to the bit."""
    from npuc.compiler.quantize.prepare import prepare
    from npuc.compiler.quantize.unfuse import split_fused

    g = _optimized(name)
    clamps = [n for n in g.nodes if n.op_type == "FusedConv" and
              n.attrs.get("activation") in ("Relu", "Clip")]
    assert clamps
    kept = prepare(g)
    split_fused(kept)
    assert len([n for n in kept.nodes if n.op_type == "FusedConv"]) == len(clamps)
    cal = _cal(name)
    fused = quantize(g, "warboy-2pe", cal, progress=False)
    parts = quantize(_unfused(g), "warboy-2pe", cal, progress=False)
    ev = npuc.zoo.sample_inputs(name, batch=1, seed=7)
    want, got = execute(parts, ev), execute(fused, ev)
    assert sorted(n.op_type for n in fused.nodes) == sorted(n.op_type for n in parts.nodes)
    for k in want:
        assert np.array_equal(want[k], got[k])

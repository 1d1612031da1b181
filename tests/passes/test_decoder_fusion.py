"""Decoders as the exporters write them: -O2 finds RMSNorm, rotary embedding, grouped-query
attention and the gated MLP in every form, keeps the results, and exports back to ONNX."""

from __future__ import annotations

import collections

import numpy as np
import onnxruntime as ort
import pytest

import npuc
from npuc import zoo
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.frontend.onnx_export import export_onnx
from npuc.compiler.passes.decompose import decompose_npuc
from npuc.compiler.schedule.prepare import load_static
from npuc.ir.decisions import log_of

STYLES = {
    "eager": {},
    "sdpa": {"attention": "sdpa"},
    "gelu": {"act": "gelu"},
    "decode": {"past": 5, "sequence": 1},
    "decode-sdpa-opset18": {"past": 5, "sequence": 1, "attention": "sdpa", "opset": 18},
    "onnx-ops": {"opset": 23, "norm": "onnx", "rotary": "onnx", "attention": "onnx"},
}


def optimized(style):
    proto = zoo.build("llama-tiny", batch=1, **STYLES[style])
    graph, _ = load_static(proto, 1)
    return proto, npuc.optimize(graph, level=2, verify=True)


def ops(graph):
    return collections.Counter(n.qualified_type for n in graph.nodes)


@pytest.mark.parametrize("style", list(STYLES))
def test_decoder_patterns_become_npuc_ops(style):
    proto, g = optimized(style)
    count = ops(g)
    layers = 2
    onnx_ops = style == "onnx-ops"
    assert count["npuc::Attention"] == layers
    assert count["npuc::GatedMLP"] == layers
    assert count["RMSNormalization" if onnx_ops else "npuc::RMSNorm"] == 2 * layers + 1
    assert count["RotaryEmbedding" if onnx_ops else "npuc::Rotary"] == 2 * layers
    for gone in ("Expand", "Reciprocal", "Neg", "Sigmoid", "Softmax", "IsNaN", "Erf"):
        assert count[gone] == 0, gone
    for node in g.nodes:
        if node.op_type == "Attention" and node.domain == "npuc":
            assert node.attrs["kv_repeat"] == 2
            assert node.attrs["scale"] == pytest.approx(0.25)
    feeds = zoo.sample_inputs(proto, batch=1)
    want = dict(zip([o.name for o in proto.graph.output],
                    ort.InferenceSession(proto.SerializeToString(),
                                         providers=["CPUExecutionProvider"]).run(None, feeds)))
    got = execute(g, feeds)
    for name, w in want.items():
        np.testing.assert_allclose(got[name], w, rtol=1e-4, atol=2e-5, err_msg=name)
    exported = export_onnx(decompose_npuc(g))
    back = ort.InferenceSession(exported.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    for name, b in zip([o.name for o in exported.graph.output], back):
        np.testing.assert_allclose(b, want[name], rtol=1e-4, atol=2e-5, err_msg=name)


def test_refusals_are_logged_with_reasons():
    from npuc.ir.parser import parse_text

    g = parse_text("""npuir 1
opset ai.onnx=17
graph main(%x: f32[2,8], %w: f32[8]) {
  const %two: f32[] = 2.0
  const %eps: f32[] = 1e-6
  %p = Pow(%x, %two) : f32[2,8]
  %m = ReduceMean(%p) {axes = [0], keepdims = 1} : f32[1,8]
  %a = Add(%m, %eps) : f32[1,8]
  %s = Sqrt(%a) : f32[1,8]
  %r = Reciprocal(%s) : f32[1,8]
  %y = Mul(%x, %r) : f32[2,8]
  return %y
}
""")
    npuc.optimize(g, passes="fuse-rmsnorm", copy=False)
    reasons = [d.reason for d in log_of(g) if d.stage == "fuse-rmsnorm"]
    assert any("trailing axes" in r for r in reasons)

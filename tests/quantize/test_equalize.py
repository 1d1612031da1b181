"""Cross-layer equalization: a Conv's channels scaled into the depthwise Conv reading
them computes the same function, and one int8 scale then fits every channel."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.quantize import quantize, sqnr
from npuc.compiler.quantize.equalize import equalizable_pairs, equalize
from npuc.ir.decisions import log_of


def _model(spread, relu=True, seed=0, channels=6):
    """Conv whose output channels span ``spread`` (as after a folded BatchNorm), then
    (Relu and) a depthwise 3x3 Conv."""
    rng = np.random.default_rng(seed)
    gains = np.geomspace(1.0, spread, channels).astype(np.float32)
    w1 = rng.normal(0, 0.3, (channels, 3, 3, 3)).astype(np.float32) * gains[:, None, None,
                                                                             None]
    inits = {"w1": w1, "b1": (rng.normal(0, 0.1, channels) * gains).astype(np.float32),
             "w2": rng.normal(0, 0.3, (channels, 1, 3, 3)).astype(np.float32) / gains[
                 :, None, None, None]}
    mid = "r" if relu else "y"
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["y"], name="conv", pads=[1] * 4)]
    if relu:
        nodes.append(helper.make_node("Relu", ["y"], ["r"], name="relu"))
    nodes.append(helper.make_node("Conv", [mid, "w2"], ["out"], name="dw", pads=[1] * 4,
                                  group=channels))
    g = helper.make_graph(
        nodes, "eq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, channels, 8, 8])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return npuc.import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def _samples(n, seed):
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(n)]


@settings(max_examples=12, deadline=None)
@given(spread=st.floats(1.0, 300.0), relu=st.booleans(), seed=st.integers(0, 1000))
def test_equalized_graph_computes_the_same_function(spread, relu, seed):
    g = _model(spread, relu, seed)
    e = g.copy()
    assert len(equalizable_pairs(e)) == 1
    equalize(e, _samples(2, seed))
    for s in _samples(2, seed + 1):
        want, got = execute(g, s)["out"], execute(e, s)["out"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_one_int8_scale_then_fits_every_channel():
    g = _model(100.0)
    q = quantize(g, "warboy-2pe", _samples(8, 0), progress=False)
    assert any(d.action == "equalized" for d in log_of(q))
    held = _samples(4, 5)
    got = min(sqnr(execute(g, s)["out"], execute(q, s)["out"]) for s in held)
    # without equalization the smallest channels get a few int8 levels: 15.9 dB
    assert got > 28, got


def test_a_conv_read_elsewhere_is_left_alone():
    g = _model(100.0)
    assert equalizable_pairs(g)
    y = next(v for v in g.values() if v.name == "y")
    g.outputs.append(y)
    assert not equalizable_pairs(g)

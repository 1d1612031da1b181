"""A 1x1 convolution and the depthwise convolution that alone reads it, run as one kernel
in a float32-products run: the bits of the two nodes run apart, on any thread count,
close to onnxruntime; pairs that cannot run as one run apart."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.executor import chains
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.executor.kernels import conv_chain
from npuc.compiler.passes.manager import optimize


def _activation(kind, name, out):
    if kind == "relu":
        return [helper.make_node("Relu", [name], [out])], []
    if kind == "clip":
        return [helper.make_node("Clip", [name, "lo", "hi"], [out])], []
    if kind == "leaky":
        return [helper.make_node("LeakyRelu", [name], [out], alpha=0.1)], []
    return [helper.make_node("Identity", [name], [out])], []


def _model(path, n, k, m, h, act1, act2, stride=1, dilation=1, bias=True, seed=0,
           extra_reader=False):
    """x -> 1x1 Conv (k -> m) -> act1 -> 3x3 depthwise Conv -> act2 -> y, saved at
    ``path``; ``extra_reader``: the 1x1 convolution's result is a graph output too."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((m, k, 1, 1)) / np.sqrt(k)).astype(np.float32)
    w2 = rng.standard_normal((m, 1, 3, 3)).astype(np.float32) / 3
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array(np.float32(0), "lo"),
             numpy_helper.from_array(np.float32(6), "hi")]
    names1, names2 = ["x", "w1"], ["a", "w2"]
    if bias:
        inits += [numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), "b1"),
                  numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), "b2")]
        names1.append("b1")
        names2.append("b2")
    nodes = [helper.make_node("Conv", names1, ["c1"])]
    more, _ = _activation(act1, "c1", "a")
    nodes += more
    nodes.append(helper.make_node("Conv", names2, ["c2"], group=m, pads=[dilation] * 4,
                                  strides=[stride, stride], dilations=[dilation, dilation]))
    more, _ = _activation(act2, "c2", "y")
    nodes += more
    oh = (h - 1) // stride + 1
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", m, oh, oh])]
    if extra_reader:
        outputs.append(helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", m, h, h]))
    graph = helper.make_graph(nodes, "pair", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["n", k, h, h])], outputs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return optimize(npuc.load_model(str(path)), level=2)


def _runs(monkeypatch, g, feeds):
    """(the float32 run's outputs, how many pairs ran as one, the outputs run apart)."""
    taken = []
    original = conv_chain.run

    def counted(*a):
        y = original(*a)
        taken.append(y is not None)
        return y

    monkeypatch.setattr(conv_chain, "run", counted)
    fused = execute(g, feeds, products="float32")
    apart = execute(g, feeds, products="float32", observe=lambda node, results: None)
    return fused, sum(taken), apart


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), k=st.sampled_from([3, 16, 40]), m=st.sampled_from([8, 20, 48]),
       h=st.integers(3, 32), acts=st.sampled_from([("relu", "clip"), ("clip", "none"),
                                                   ("none", "relu")]),
       stride=st.integers(1, 2), dilation=st.integers(1, 2), bias=st.booleans(),
       threads_=st.sampled_from(["1", "2", "3"]), seed=st.integers(0, 2**31))
def test_a_pair_run_as_one_has_the_bits_of_the_nodes_run_apart(tmp_path_factory, n, k, m, h,
                                                                acts, stride, dilation, bias,
                                                                threads_, seed):
    path = tmp_path_factory.mktemp("pair") / "pair.onnx"
    g = _model(path, n, k, m, h, *acts, stride, dilation, bias, seed)
    x = np.random.default_rng(seed).standard_normal((n, k, h, h)).astype(np.float32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NPUC_BLAS_THREADS", threads_)
        fused, taken, apart = _runs(mp, g, {"x": x})
    assert taken == 1
    assert fused["y"].tobytes() == apart["y"].tobytes()


def test_a_pair_matches_onnxruntime_and_is_prepared_again_for_another_batch(tmp_path,
                                                                            monkeypatch):
    path = tmp_path / "pair.onnx"
    g = _model(path, 2, 24, 144, 28, "clip", "clip")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (2, 1, 3):
        x = np.random.default_rng(n).standard_normal((n, 24, 28, 28)).astype(np.float32)
        fused, taken, apart = _runs(monkeypatch, g, {"x": x})
        assert taken == 1 and fused["y"].shape == (n, 144, 28, 28)
        assert fused["y"].tobytes() == apart["y"].tobytes()
        assert np.allclose(fused["y"], session.run(None, {"x": x})[0], rtol=1e-5, atol=1e-5)


def test_pairs_that_cannot_run_as_one_run_apart(tmp_path, monkeypatch):
    x = np.random.default_rng(0).standard_normal((1, 16, 12, 12)).astype(np.float32)
    # the expanded tensor is also a graph output: no pair
    g = _model(tmp_path / "a.onnx", 1, 16, 32, 12, "relu", "relu", extra_reader=True)
    assert chains.plan(g) == {}
    # an activation other than a clamp: planned, then run apart (its ONNX kernel)
    g = _model(tmp_path / "b.onnx", 1, 16, 32, 12, "leaky", "relu")
    fused, taken, apart = _runs(monkeypatch, g, {"x": x})
    assert taken == 0 and fused["y"].tobytes() == apart["y"].tobytes()
    # planes larger than MAX_PLANE run apart
    h = int(np.sqrt(conv_chain.MAX_PLANE)) + 1
    g = _model(tmp_path / "c.onnx", 1, 16, 32, h, "relu", "relu")
    xl = np.random.default_rng(1).standard_normal((1, 16, h, h)).astype(np.float32)
    fused, taken, apart = _runs(monkeypatch, g, {"x": xl})
    assert taken == 0 and fused["y"].tobytes() == apart["y"].tobytes()


def test_an_observed_or_float64_run_makes_the_expanded_tensor(tmp_path, monkeypatch):
    g = _model(tmp_path / "p.onnx", 1, 16, 32, 10, "relu", "relu")
    x = np.random.default_rng(0).standard_normal((1, 16, 10, 10)).astype(np.float32)
    seen = []
    execute(g, {"x": x}, products="float32",
            observe=lambda node, results: seen.append(node.op_type))
    assert len(seen) == len(list(g.nodes))  # every node ran and was seen
    calls = []
    monkeypatch.setattr(conv_chain, "run", lambda *a: calls.append(a))
    execute(g, {"x": x})  # float64 products: the IR's definition, node by node
    assert calls == []

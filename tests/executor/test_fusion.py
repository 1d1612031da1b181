"""The residual fusions of a float32 run (executor/fusion.py): a convolution that adds a
residual and applies the Relu or Clip after it gives the bits of the separate nodes, and
only the patterns whose separate nodes nobody else needs are fused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.executor import fusion
from npuc.compiler.executor.interpreter import RunStats, execute
from npuc.compiler.passes.manager import optimize


def _residual_model(rng, n=2, c=4, m=4, h=9, w=11, k=3, stride=1, bias=True, act="Relu",
                    residual_first=True, swap=False, extra_reader=False, broadcast=False):
    """x -> Conv(a) ; x -> Conv(b) ; Add(b, a) -> act: the second convolution adds the
    first's output (computed before it) when ``residual_first``."""
    pad = k // 2
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    inits = [numpy_helper.from_array(rng.standard_normal((m, c, k, k)).astype(np.float32) * .3, "wa"),
             numpy_helper.from_array(rng.standard_normal((m, c, k, k)).astype(np.float32) * .3, "wb"),
             numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), "bb")]
    geometry = dict(kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
    conv_a = helper.make_node("Conv", ["x", "wa"], ["a"], **geometry)
    conv_b = helper.make_node("Conv", ["x", "wb", "bb"] if bias else ["x", "wb"], ["b"], **geometry)
    convs = [conv_a, conv_b] if residual_first else [conv_b, conv_a]
    other = "a"
    nodes = list(convs)
    if broadcast:  # a residual of one value per channel: the Add broadcasts
        nodes.append(helper.make_node("ReduceMean", ["a"], ["am"], axes=[0, 2, 3], keepdims=1))
        other = "am"
    nodes.append(helper.make_node("Add", [other, "b"] if swap else ["b", other], ["s"]))
    outputs = ["y"]
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["s"], ["y"]))
    elif act == "Clip":
        inits += [numpy_helper.from_array(np.float32(-0.5), "lo"),
                  numpy_helper.from_array(np.float32(1.5), "hi")]
        nodes.append(helper.make_node("Clip", ["s", "lo", "hi"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["s"], ["y"]))
    if extra_reader:
        nodes.append(helper.make_node("Neg", ["b"], ["nb"]))
        outputs.append("nb")
    graph = helper.make_graph(
        nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [n, m, oh, ow]) for o in outputs],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model, rng.standard_normal((n, c, h, w)).astype(np.float32)


def _oracle(model, x):
    """onnxruntime's outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def _runs(graph, x):
    """(fused run, unfused run: an observer turns fusion off)"""
    fused = execute(graph, {"x": x}, products="float32")
    plain = execute(graph, {"x": x}, products="float32", observe=lambda node, results: None)
    return fused, plain


@settings(max_examples=25, deadline=None)
@given(c=st.integers(1, 5), m=st.integers(1, 9), h=st.integers(3, 12), w=st.integers(3, 14),
       k=st.sampled_from([1, 3]), stride=st.integers(1, 2), bias=st.booleans(),
       act=st.sampled_from(["Relu", "Clip", None]), swap=st.booleans(), level=st.sampled_from([0, 2]),
       seed=st.integers(0, 99))
def test_fused_residual_has_the_bits_of_the_separate_nodes(c, m, h, w, k, stride, bias, act,
                                                           swap, level, seed):
    model, x = _residual_model(np.random.default_rng(seed), c=c, m=m, h=h, w=w, k=k,
                               stride=stride, bias=bias, act=act, swap=swap)
    graph = npuc.load_model(model)
    graph = optimize(graph, level=level) if level else graph
    assert len(fusion.plan(graph)) == 1
    fused, plain = _runs(graph, x)
    assert np.array_equal(fused["y"], plain["y"])
    want = _oracle(model, x)[0]
    np.testing.assert_allclose(fused["y"], want, rtol=1e-4, atol=1e-4)


def test_the_activation_is_fused_and_its_nodes_skipped():
    model, x = _residual_model(np.random.default_rng(0), act="Clip")
    graph = npuc.load_model(model)
    (only,) = fusion.plan(graph).values()
    assert only.act is not None and only.act.op_type == "Clip" and len(only.skipped) == 2
    stats = RunStats()
    execute(graph, {"x": x}, products="float32", stats=stats)
    assert stats.nodes_run == len(list(graph.nodes))  # the skipped ones computed too


@pytest.mark.parametrize("case", [dict(extra_reader=True), dict(broadcast=True)])
def test_patterns_that_need_the_separate_nodes_are_not_fused(case):
    """A convolution output read twice, an Add that broadcasts: not fused, and the run is
    still right."""
    model, x = _residual_model(np.random.default_rng(1), **case)
    graph = npuc.load_model(model)
    assert fusion.plan(graph) == {}
    fused, plain = _runs(graph, x)
    want = _oracle(model, x)
    for name, value in zip([o.name for o in model.graph.output], want):
        assert np.array_equal(fused[name], plain[name])
        np.testing.assert_allclose(fused[name], value, rtol=1e-4, atol=1e-4)


def test_residual_after_the_convolution_fuses_into_the_later_one():
    """Add(b, a) where b's convolution runs first: the second convolution (a) is the one
    whose epilogue adds b."""
    model, x = _residual_model(np.random.default_rng(2), residual_first=False)
    graph = npuc.load_model(model)
    (only,) = fusion.plan(graph).values()
    assert list(graph.nodes)[only.node].outputs[0].name == "a"
    fused, plain = _runs(graph, x)
    assert np.array_equal(fused["y"], plain["y"])


def test_float64_runs_do_not_fuse():
    model, x = _residual_model(np.random.default_rng(3))
    graph = npuc.load_model(model)
    stats = RunStats()
    execute(graph, {"x": x}, stats=stats)  # float64 products: the IR's definition
    assert stats.nodes_run == len(list(graph.nodes))


def _product_model(rng, kind, act):
    """A transformer's residual: x (2, 5, 8) -> product (+ bias) -> Add(x) -> act. ``kind``:
    a MatMul then a bias Add (FusedMatMul at -O2), a Gemm on the flattened rows and a
    Reshape back (GPT-2's form), or a MatMul without bias."""
    w = numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32) * .3, "w")
    bias = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "bias")
    rows = numpy_helper.from_array(np.array([10, 8], np.int64), "rows")
    back = numpy_helper.from_array(np.array([2, 5, 8], np.int64), "back")
    if kind == "matmul+bias":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["p0"]),
                 helper.make_node("Add", ["p0", "bias"], ["p"])]
    elif kind.startswith("gemm"):  # "gemm-alpha": a scaled product (the unblocked path)
        alpha = dict(alpha=0.5) if kind == "gemm-alpha" else {}
        nodes = [helper.make_node("Reshape", ["x", "rows"], ["x2"]),
                 helper.make_node("Gemm", ["x2", "w", "bias"], ["p2"], **alpha),
                 helper.make_node("Reshape", ["p2", "back"], ["p"])]
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["p"])]
    nodes.append(helper.make_node("Add", ["x", "p"], ["s"]))
    nodes.append(helper.make_node(act or "Identity", ["s"], ["y"]))
    graph = helper.make_graph(
        nodes, "product", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 8])],
        [w, bias, rows, back])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model, rng.standard_normal((2, 5, 8)).astype(np.float32)


@pytest.mark.parametrize("kind", ["matmul+bias", "gemm+reshape", "gemm-alpha", "matmul"])
@pytest.mark.parametrize("level", [0, 2])
@pytest.mark.parametrize("act", ["Relu", None])
def test_products_fuse_their_residual_with_the_same_bits(kind, level, act):
    model, x = _product_model(np.random.default_rng(4), kind, act)
    graph = npuc.load_model(model)
    graph = optimize(graph, level=level) if level else graph
    plans = list(fusion.plan(graph).values())
    if kind != "matmul+bias" or level:  # the bias Add between them stops it at -O0
        assert len(plans) == 1
        assert plans[0].reshaped == kind.startswith("gemm")
    fused, plain = _runs(graph, x)
    assert np.array_equal(fused["y"], plain["y"])
    np.testing.assert_allclose(fused["y"], _oracle(model, x)[0], rtol=1e-5, atol=1e-5)


def test_a_residual_from_the_enclosing_graph_inside_an_if_branch(monkeypatch):
    """A branch whose convolution adds a tensor of the enclosing graph is fused, with the
    numbers of the separate nodes."""
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32) * .3, "w")
    shape = [1, 4, 6, 6]
    value = helper.make_tensor_value_info
    branch = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Add", ["c", "r"], ["s"]), helper.make_node("Relu", ["s"], ["t"])],
        "then", [], [value("t", TensorProto.FLOAT, shape)],
        value_info=[value("c", TensorProto.FLOAT, shape), value("s", TensorProto.FLOAT, shape)])
    other = helper.make_graph([helper.make_node("Identity", ["r"], ["e"])], "else", [],
                              [value("e", TensorProto.FLOAT, shape)])
    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["r"]),
         helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=other)],
        "outer", [value("x", TensorProto.FLOAT, shape), value("flag", TensorProto.BOOL, [])],
        [value("y", TensorProto.FLOAT, shape)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = npuc.load_model(model)
    x = rng.standard_normal(shape).astype(np.float32)
    feeds = {"x": x, "flag": np.array(True)}
    (branch_graph,) = [a for a in list(g.nodes)[1].attrs.values()
                       if getattr(a, "name", "") == "then"]
    assert len(fusion.plan(branch_graph)) == 1
    fused = execute(g, feeds, products="float32")
    monkeypatch.setattr(fusion, "plan", lambda graph: {})
    plain = execute(g, feeds, products="float32")
    assert np.array_equal(fused["y"], plain["y"])
    import onnxruntime as ort

    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(fused["y"], want, rtol=1e-5, atol=1e-5)


def _compare(model, feeds, fusions):
    """The fused run has the unfused run's bits and onnxruntime's numbers, with
    ``fusions`` fusions planned."""
    import onnxruntime as ort

    graph = npuc.load_model(model)
    assert len(fusion.plan(graph)) == fusions
    fused = execute(graph, feeds, products="float32")
    plain = execute(graph, feeds, products="float32", observe=lambda node, results: None)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    for name, value in zip([o.name for o in model.graph.output], want):
        assert np.array_equal(fused[name], plain[name])
        np.testing.assert_allclose(fused[name], value, rtol=1e-5, atol=1e-5)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    value = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "g", [value(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [value(n, TensorProto.FLOAT, s) for n, s in outputs],
                              [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_clip_with_attribute_bounds_keeps_its_clamp():
    """Clip before opset 11 has its bounds as attributes: the Add fuses, the Clip runs."""
    rng = np.random.default_rng(6)
    model = _model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
                    helper.make_node("Add", ["y", "r"], ["s"]),
                    helper.make_node("Clip", ["s"], ["o"], min=-0.2, max=0.3)],
                   [("x", [2, 3, 5, 5]), ("r", [2, 4, 5, 5])], [("o", [2, 4, 5, 5])],
                   [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))], opset=10)
    feeds = {"x": rng.standard_normal((2, 3, 5, 5)).astype(np.float32),
             "r": rng.standard_normal((2, 4, 5, 5)).astype(np.float32)}
    (only,) = fusion.plan(npuc.load_model(model)).values()
    assert only.act is None
    _compare(model, feeds, 1)


def test_a_convolution_reshaped_before_its_add():
    rng = np.random.default_rng(7)
    model = _model([helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
                    helper.make_node("Reshape", ["y", "shape"], ["ry"]),
                    helper.make_node("Add", ["ry", "r"], ["s"]), helper.make_node("Relu", ["s"], ["o"])],
                   [("x", [2, 3, 4, 4]), ("r", [2, 64])], [("o", [2, 64])],
                   [("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
                    ("b", rng.standard_normal(4).astype(np.float32)),
                    ("shape", np.array([2, 64], np.int64))])
    _compare(model, {"x": rng.standard_normal((2, 3, 4, 4)).astype(np.float32),
                     "r": rng.standard_normal((2, 64)).astype(np.float32)}, 1)


def test_a_product_of_vectors_is_not_fused():
    rng = np.random.default_rng(8)
    model = _model([helper.make_node("MatMul", ["a", "b"], ["y"]),
                    helper.make_node("Add", ["y", "r"], ["o"])],
                   [("a", [5]), ("b", [5]), ("r", [])], [("o", [])])
    _compare(model, {"a": rng.standard_normal(5).astype(np.float32),
                     "b": rng.standard_normal(5).astype(np.float32),
                     "r": np.array(-100, np.float32)}, 0)


def test_a_residual_whose_declared_shape_is_wrong_runs_the_nodes_separately():
    """The model declares the residual (5, 3), the data makes it (1, 3): the Add
    broadcasts, as onnxruntime's does."""
    rng = np.random.default_rng(9)
    model = _model([helper.make_node("Expand", ["r0", "shape"], ["r"]),
                    helper.make_node("MatMul", ["a", "w"], ["y"]),
                    helper.make_node("Add", ["y", "r"], ["s"]), helper.make_node("Relu", ["s"], ["o"])],
                   [("a", [5, 7]), ("r0", [1, 3])], [("o", [5, 3])],
                   [("w", rng.standard_normal((7, 3)).astype(np.float32))])
    model.graph.input.append(helper.make_tensor_value_info("shape", TensorProto.INT64, [2]))
    model.graph.value_info.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [5, 3]))
    _compare(model, {"a": rng.standard_normal((5, 7)).astype(np.float32),
                     "r0": rng.standard_normal((1, 3)).astype(np.float32),
                     "shape": np.array([1, 3], np.int64)}, 1)


def _activation_model(rng, kind, act, bounds="constant", also=None):
    """x (2, 3, 7, 9) -> a product -> Relu or Clip -> y: a Conv (3x3 or 1x1), or a MatMul
    or Gemm over the last axis. ``bounds``: the Clip's as initializers or as graph inputs;
    ``also``: "output" (the product is a graph output too) or "reader" (a Neg reads it)."""
    w4 = rng.standard_normal((5, 3, 3, 3)).astype(np.float32) * .3
    inits = [numpy_helper.from_array(w4, "w3"), numpy_helper.from_array(w4[:, :, :1, :1].copy(), "w1"),
             numpy_helper.from_array(rng.standard_normal((9, 4)).astype(np.float32), "wm"),
             numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([42, 9], np.int64), "rows")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 7, 9])]
    if kind == "conv3":
        nodes, shape = [helper.make_node("Conv", ["x", "w3", "b"], ["p"], pads=[1] * 4)], [2, 5, 7, 9]
    elif kind == "conv1":
        nodes, shape = [helper.make_node("Conv", ["x", "w1"], ["p"])], [2, 5, 7, 9]
    elif kind == "matmul":
        nodes, shape = [helper.make_node("MatMul", ["x", "wm"], ["p"])], [2, 3, 7, 4]
    else:
        nodes = [helper.make_node("Reshape", ["x", "rows"], ["x2"]),
                 helper.make_node("Gemm", ["x2", "wm"], ["p"])]
        shape = [42, 4]
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["p"], ["y"]))
    else:
        nodes.append(helper.make_node("Clip", ["p", "lo", "hi"], ["y"]))
        if bounds == "constant":
            inits += [numpy_helper.from_array(np.float32(-0.25), "lo"),
                      numpy_helper.from_array(np.float32(0.75), "hi")]
        else:
            inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, []) for n in ("lo", "hi")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)]
    if also == "output":
        outputs.append(helper.make_tensor_value_info("p", TensorProto.FLOAT, shape))
    elif also == "reader":
        nodes.append(helper.make_node("Neg", ["p"], ["n"]))
        outputs.append(helper.make_tensor_value_info("n", TensorProto.FLOAT, shape))
    graph = helper.make_graph(nodes, "activation", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": rng.standard_normal((2, 3, 7, 9)).astype(np.float32)}
    if act == "Clip" and bounds != "constant":
        feeds.update(lo=np.array(-0.25, np.float32), hi=np.array(0.75, np.float32))
    return model, feeds


@pytest.mark.parametrize("kind", ["conv3", "conv1", "matmul", "gemm"])
@pytest.mark.parametrize("act", ["Relu", "Clip"])
def test_a_products_activation_alone_is_fused_with_the_same_bits(kind, act):
    """A graph as imported (-O0): the product applies the Relu or Clip that alone reads
    it, in its epilogue; the bits are those of the separate nodes."""
    model, feeds = _activation_model(np.random.default_rng(7), kind, act)
    graph = npuc.load_model(model)
    (only,) = fusion.plan(graph).values()
    assert only.residual is None and only.act.op_type == act and len(only.skipped) == 1
    stats = RunStats()
    fused = execute(graph, feeds, products="float32", stats=stats)
    plain = execute(graph, feeds, products="float32", observe=lambda node, results: None)
    assert np.array_equal(fused["y"], plain["y"])
    assert stats.nodes_run == len(list(graph.nodes))
    import onnxruntime as ort

    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(fused["y"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", [dict(bounds="inputs"), dict(also="output"),
                                  dict(also="reader")])
def test_an_activation_the_run_needs_apart_is_not_fused(case):
    """Clip bounds known only at run time, a product that is also an output or read by
    another node: the nodes run apart, and the results are right."""
    model, feeds = _activation_model(np.random.default_rng(8), "conv3", "Clip", **case)
    graph = npuc.load_model(model)
    assert fusion.plan(graph) == {}
    got = execute(graph, feeds, products="float32")
    import onnxruntime as ort

    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    for value, name in zip(want, [o.name for o in model.graph.output]):
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-5)

"""Kernels writing into an input that dies at their node: the same numbers, and nobody
who can still see the buffer sees it change."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from npuc.compiler.executor import interpreter
from npuc.compiler.executor.kernels.binary import _clip_flat
from npuc.compiler.executor.kernels.conv_depthwise import _depthwise2d, _depthwise_planes
from npuc.compiler.frontend.load import load_model

F = onnx.TensorProto.FLOAT


def _graph(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, F, s) for n, s in outputs],
                          initializer=list(inits))
    return load_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def _chain():
    """x -> Conv -> Clip -> Relu -> Add(., x2) -> y, with the Conv output read once."""
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", F, [4, 3, 3, 3], rng.standard_normal(108).astype(np.float32))
    lo = helper.make_tensor("lo", F, [], [-0.5])
    hi = helper.make_tensor("hi", F, [], [0.75])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["k"]),
             helper.make_node("Relu", ["k"], ["r"]),
             helper.make_node("Add", ["r", "x2"], ["y"])]
    graph = _graph(nodes, [("x", [1, 3, 6, 6]), ("x2", [1, 4, 6, 6])], [("y", [1, 4, 6, 6])],
                   [w, lo, hi])
    feeds = {"x": rng.standard_normal((1, 3, 6, 6)).astype(np.float32),
             "x2": rng.standard_normal((1, 4, 6, 6)).astype(np.float32)}
    return graph, feeds


def _donations(monkeypatch):
    seen = {}
    real = interpreter.evaluate

    def spy(node, inputs, *args, donated=(), **kw):
        results = real(node, inputs, *args, donated=donated, **kw)
        # what was offered, and whether the kernel wrote into it
        seen[node.op_type] = donated
        seen[node.op_type + " wrote"] = [results[0] is inputs[i] for i in donated]
        return results

    monkeypatch.setattr(interpreter, "evaluate", spy)
    return seen


def test_dying_inputs_are_overwritten_with_the_same_numbers(monkeypatch):
    graph, feeds = _chain()
    copies = {k: v.copy() for k, v in feeds.items()}
    plain = interpreter.execute(graph, feeds, observe=lambda node, results: None)
    seen = _donations(monkeypatch)
    got = interpreter.execute(graph, feeds)
    assert seen == {"Conv": (), "Clip": (0,), "Relu": (0,), "Add": (0,), "Conv wrote": [],
                    "Clip wrote": [True], "Relu wrote": [True], "Add wrote": [True]}
    assert np.array_equal(got["y"], plain["y"])
    # the caller's arrays are never written
    assert all(np.array_equal(feeds[k], copies[k]) for k in feeds)


def test_a_value_someone_still_holds_is_not_overwritten(monkeypatch):
    graph, feeds = _chain()
    held = {}

    def observe(node, results):  # an observer keeping the arrays, as calibration does
        held[node.op_type] = results[0]
        held[node.op_type + " copy"] = results[0].copy()

    seen = _donations(monkeypatch)
    interpreter.execute(graph, feeds, observe=observe)
    assert seen["Clip"] == () and seen["Relu"] == ()
    assert all(np.array_equal(held[op], held[op + " copy"]) for op in ("Conv", "Clip", "Relu"))


def test_a_value_read_twice_or_read_later_is_not_overwritten(monkeypatch):
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Mul", ["a", "a"], ["b"]),  # the same value twice
             helper.make_node("Neg", ["b"], ["c"]),
             helper.make_node("Relu", ["b"], ["d"]),  # b is read again after Neg
             helper.make_node("Add", ["c", "d"], ["y"])]
    graph = _graph(nodes, [("x", [2, 5])], [("y", [2, 5]), ("b", [2, 5])])
    x = np.random.default_rng(1).standard_normal((2, 5)).astype(np.float32)
    seen = _donations(monkeypatch)
    out = interpreter.execute(graph, {"x": x})
    assert seen["Mul"] == () and seen["Add"] == (0, 1)
    b = np.maximum(x, 0) * np.maximum(x, 0)
    assert np.array_equal(out["b"], b)  # a graph output is never overwritten
    assert np.array_equal(out["y"], -b + np.maximum(b, 0))


_SPECIAL = [np.nan, -0.0, 0.0, -1.0, 0.5, 6.0, np.inf, -np.inf, 1e-45, -1e-45]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([np.float32, np.float64]), st.sampled_from(_SPECIAL),
       st.sampled_from(_SPECIAL), st.integers(0, 2**31))
def test_one_pass_clip_is_numpys_maximum_then_minimum(dtype, lo, hi, seed):
    x = np.concatenate([np.array(_SPECIAL),
                        np.random.default_rng(seed).standard_normal(300) * 4]).astype(dtype)
    lo, hi = dtype(lo), dtype(hi)
    want = np.minimum(np.maximum(x, lo), hi)
    got = np.empty_like(x)
    _clip_flat(x, lo, hi, got)
    assert got.tobytes() == want.tobytes()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([(3, 3), (5, 5), (1, 3), (7, 2)]),
       st.integers(1, 2), st.integers(1, 2), st.integers(1, 4), st.integers(1, 12),
       st.integers(1, 12), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2**31))
def test_depthwise_planes_are_the_general_loop_to_the_bit(sh, sw, k, dil, mult, c, h, w, ph,
                                                          pw, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    kernel = rng.standard_normal((c * mult, 1, *k)).astype(np.float32)
    oh = (h + 2 * ph - (k[0] - 1) * dil - 1) // sh + 1
    ow = (w + 2 * pw - (k[1] - 1) * dil - 1) // sw + 1
    if oh < 1 or ow < 1:
        return
    want, got = (np.empty((2, c * mult, oh, ow), np.float32) for _ in range(2))
    _depthwise2d(x, kernel, want, sh, sw, ph, pw, dil, dil, mult)
    _depthwise_planes(x, kernel, got, 0, c, sh, sw, ph, pw, dil, dil, mult, np.float64(0),
                      np.empty(0), 1.0, 0.0)
    assert got.tobytes() == want.tobytes()


def test_only_kernels_marked_in_place_are_given_donations(monkeypatch):
    from npuc.compiler.executor.kernels import KERNELS, in_place, load_all

    load_all()
    graph = _graph([helper.make_node("Neg", ["x"], ["y"])], [("x", [3])], [("y", [3])])
    node = next(iter(graph.nodes))
    offered = []

    def plain(inputs, attrs, ctx):  # a kernel that could run others with its context
        offered.append(ctx.donated)
        return [-inputs[0]]

    x = np.ones(3, np.float32)
    monkeypatch.setitem(KERNELS, ("", "Neg"), plain)
    interpreter.evaluate(node, [x], donated=(0,))
    monkeypatch.setitem(KERNELS, ("", "Neg"), in_place(lambda i, a, c: plain(i, a, c)))
    interpreter.evaluate(node, [x], donated=(0,))
    assert offered == [(), (0,)]

"""Convolutions prepared once per node (kernels/conv_prepared.py): the bits of the general
path, on every run, and prepared again when the node, its weights or its input change."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.executor.kernels import conv_prepared
from npuc.compiler.passes.manager import optimize

from .test_fusion import _residual_model


def _general(graph, feeds):
    """The outputs with every convolution through conv_nd."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(conv_prepared, "run", lambda *a, **k: None)
        return execute(graph, feeds, products="float32")


def _chain(rng, n, c, h, w, depthwise, act, stride):
    """Conv (3x3, stride) -> act -> depthwise or grouped 3x3 -> Conv 1x1, batch ``n``
    symbolic when None."""
    m = 2 * c
    inits = [numpy_helper.from_array(rng.standard_normal((m, c, 3, 3)).astype(np.float32) * .3, "w1"),
             numpy_helper.from_array(rng.standard_normal(m).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.standard_normal((m, 1 if depthwise else 2, 3, 3))
                                     .astype(np.float32) * .3, "w2"),
             numpy_helper.from_array(rng.standard_normal((3, m, 1, 1)).astype(np.float32) * .3, "w3"),
             numpy_helper.from_array(np.float32(0.0), "lo"), numpy_helper.from_array(np.float32(1.0), "hi")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], kernel_shape=[3, 3], pads=[1] * 4,
                              strides=[stride, stride])]
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["a"], ["a2"]))
    elif act == "Clip":
        nodes.append(helper.make_node("Clip", ["a", "lo", "hi"], ["a2"]))
    else:
        nodes.append(helper.make_node("Identity", ["a"], ["a2"]))
    nodes += [helper.make_node("Conv", ["a2", "w2"], ["d"], kernel_shape=[3, 3], pads=[1] * 4,
                               group=m if depthwise else m // 2),
              helper.make_node("Conv", ["d", "w3"], ["y"], kernel_shape=[1, 1])]
    batch = n if n is not None else "N"
    oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             [batch, 3, oh, ow])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=20, deadline=None)
@given(c=st.integers(1, 12), h=st.integers(1, 20), w=st.integers(1, 20), stride=st.integers(1, 2),
       depthwise=st.booleans(), act=st.sampled_from(["Relu", "Clip", None]),
       level=st.sampled_from([0, 2]), seed=st.integers(0, 99))
def test_prepared_convolutions_have_the_bits_of_the_general_path_on_every_run(
        c, h, w, stride, depthwise, act, level, seed):
    rng = np.random.default_rng(seed)
    graph = optimize(npuc.load_model(_chain(rng, 2, 2 * c, h, w, depthwise, act, stride)),
                     level=level)
    feeds = {"x": rng.standard_normal((2, 2 * c, h, w)).astype(np.float32)}
    want = _general(graph, feeds)["y"]
    for _ in range(2):  # prepared on the first run, reused on the second
        assert execute(graph, feeds, products="float32")["y"].tobytes() == want.tobytes()
    prepared = [p for p in conv_prepared._PREPARED[graph].values() if p.usable]
    assert len(prepared) == 3  # (all three took the prepared path)


@settings(max_examples=15, deadline=None)
@given(k=st.sampled_from([1, 3]), stride=st.integers(1, 2), act=st.sampled_from(["Relu", "Clip", None]),
       seed=st.integers(0, 99))
def test_a_prepared_convolution_adds_the_run_s_residual(k, stride, act, seed):
    model, x = _residual_model(np.random.default_rng(seed), k=k, stride=stride, act=act)
    graph = optimize(npuc.load_model(model), level=2)
    want = _general(graph, {"x": x})["y"]
    for scale in (1, 2):  # a new residual each run
        got = execute(graph, {"x": x * scale}, products="float32")["y"]
        if scale == 1:
            assert got.tobytes() == want.tobytes()
        else:
            assert got.tobytes() == _general(graph, {"x": x * scale})["y"].tobytes()


def test_a_node_changed_in_place_or_given_another_shape_is_prepared_again():
    rng = np.random.default_rng(5)
    graph = npuc.load_model(_chain(rng, None, 4, 9, 11, True, "Relu", 1))
    first = next(n for n in graph.nodes if n.op_type == "Conv")
    feeds = {"x": rng.standard_normal((2, 4, 9, 11)).astype(np.float32)}
    execute(graph, feeds, products="float32")
    # another batch size
    three = {"x": rng.standard_normal((3, 4, 9, 11)).astype(np.float32)}
    got = execute(graph, three, products="float32")["y"]
    assert got.shape[0] == 3 and got.tobytes() == _general(graph, three)["y"].tobytes()
    # the attributes changed in place: another stride, another output shape
    first.attrs["strides"] = [2, 2]
    got = execute(graph, feeds, products="float32")["y"]
    want = _general(graph, feeds)["y"]
    assert got.shape == want.shape == (2, 3, 5, 6) and got.tobytes() == want.tobytes()
    assert conv_prepared._PREPARED[graph][id(first)].strides == [2, 2]
    # new weights of the same shape (a pass that rewrote the constant)
    w = first.inputs[1]
    w.const = (np.asarray(w.const) * 2).astype(np.float32)
    got = execute(graph, feeds, products="float32")["y"]
    assert got.tobytes() == _general(graph, feeds)["y"].tobytes()


def test_preparations_keep_neither_the_graph_nor_its_weights_alive():
    import gc
    import weakref

    rng = np.random.default_rng(2)
    graph = npuc.load_model(_chain(rng, 2, 4, 6, 7, False, "Clip", 1))
    w = next(n for n in graph.nodes if n.op_type == "Conv").inputs[1].const
    execute(graph, {"x": rng.standard_normal((2, 4, 6, 7)).astype(np.float32)}, products="float32")
    assert len(conv_prepared._PREPARED[graph]) == 3
    refs = weakref.ref(graph), weakref.ref(w)
    del graph, w
    gc.collect()
    assert refs[0]() is None and refs[1]() is None

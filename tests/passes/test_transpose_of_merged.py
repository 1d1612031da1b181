"""A Transpose between a Reshape merging leading axes and one splitting them again (torch's
SDPA export of the key transpose) moves after the Reshapes, computing the same numbers."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from npuc.compiler.executor.interpreter import execute
from npuc.compiler.passes.manager import optimize
from npuc.compiler.schedule.prepare import load_static


def _model(x, merged, perm, out):
    consts = [numpy_helper.from_array(np.asarray(s, np.int64), n)
              for s, n in ((merged, "s1"), (out, "s2"))]
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["m"]),
             helper.make_node("Transpose", ["m"], ["t"], perm=perm),
             helper.make_node("Reshape", ["t", "s2"], ["y"]),
             helper.make_node("Relu", ["y"], ["z"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x)],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, out)], consts)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _check(x, merged, perm, out):
    proto = _model(x, merged, perm, out)
    graph, _ = load_static(proto, 1)
    g = optimize(graph, passes="canonicalize", verify=True)
    feed = {"x": np.random.default_rng(0).standard_normal(x).astype(np.float32)}
    want = ort.InferenceSession(proto.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)[0]
    np.testing.assert_array_equal(execute(g, feed)["z"], want)
    return [n.op_type for n in g.nodes]


def test_the_sdpa_key_transpose_becomes_a_reshape_then_a_transpose():
    ops = _check([1, 2, 2, 5, 8], [4, 5, 8], [0, 2, 1], [1, 4, 8, 5])
    assert ops == ["Reshape", "Transpose", "Relu"]


def test_a_transpose_that_moves_the_merged_axis_stays():
    assert _check([2, 3, 4], [6, 4], [1, 0], [4, 2, 3]) == ["Reshape", "Transpose",
                                                             "Reshape", "Relu"]


@settings(max_examples=25, deadline=None)
@given(lead=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       rest=st.lists(st.integers(1, 4), min_size=1, max_size=3), data=st.data())
def test_moving_the_transpose_keeps_the_numbers(lead, rest, data):
    tail = data.draw(st.permutations(range(1, len(rest) + 1)))
    perm = [0] + list(tail)
    p = int(np.prod(lead))
    split = data.draw(st.sampled_from([[p], [1, p], [p, 1]] + ([lead] if lead else [])))
    merged = [p] + rest
    out = split + [merged[i] for i in perm[1:]]
    _check(lead + rest, merged, perm, out)

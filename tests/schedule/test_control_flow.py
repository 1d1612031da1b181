"""Control flow: folded when its condition is known, run on the host CPU when not."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from npuc.compiler.driver import verify
from npuc.compiler.schedule.prepare import load_static


def _const(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def _branch(name, nodes, out, shape, inits=()):
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(
        out, TensorProto.FLOAT, shape)], list(inits))


def shape_if_model(out_is_graph_output: bool):
    """y = Relu(x), doubled when axis 1 has size 1 (a test on a shape, as exporters write
    them): If(Equal(Gather(Shape(r), 1), 1)) then Mul(r, 2) else Identity(r)."""
    then = _branch("then", [helper.make_node("Mul", ["r", "two"], ["sq"])], "sq",
                   ["N", "C", 8], [_const("two", np.array(2, np.float32))])
    other = _branch("else", [helper.make_node("Identity", ["r"], ["same"])], "same",
                    ["N", "C", 8])
    out = "y" if out_is_graph_output else "z"
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["d"], axis=0),
             helper.make_node("Equal", ["d", "one"], ["c"]),
             helper.make_node("If", ["c"], [out], then_branch=then, else_branch=other)]
    if not out_is_graph_output:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["y"]))
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", "C", 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["N", "C", 8])], [_const("one", np.array(1, np.int64))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _ort(model, feeds):
    return ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("graph_output", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
def test_an_if_known_from_shapes_is_replaced_by_its_branch(graph_output, channels):
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.schedule.shapes import parse_shapes

    model = shape_if_model(graph_output)
    graph, _ = load_static(model, shapes=parse_shapes([f"C={channels}"])[0])
    assert not any(n.op_type == "If" for n in graph.nodes)
    assert [v.name for v in graph.outputs] == ["y"]
    x = np.random.default_rng(0).standard_normal((1, channels, 8)).astype(np.float32)
    np.testing.assert_allclose(execute(graph, {"x": x})["y"], _ort(model, {"x": x})[0],
                               rtol=1e-6)


def test_a_folded_if_compiles_and_verifies():
    x = np.random.default_rng(1).standard_normal((1, 1, 8)).astype(np.float32)
    r = verify(shape_if_model(False), "rngd", inputs={"x": x})
    assert r.passed, r.outputs
    assert r.compiled.summary["nodes_on_cpu"] == 0

"""Getting exported models ready to schedule: shapes settle, inputs stay in range."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from npuc.compiler.executor.inputs import random_inputs
from npuc.compiler.frontend.onnx_import import import_onnx
from npuc.compiler.schedule.prepare import load_static
from npuc.ir.types import TensorType


def _chained_reshapes(levels: int):
    """x[batch, 4, 8] reshaped ``levels`` times, each target computed from Shape of the
    previous result, as the TorchScript exporter writes view(size(0), -1)."""
    nodes, inits = [], [numpy_helper.from_array(np.array([0], np.int64), "zero"),
                        numpy_helper.from_array(np.array([-1], np.int64), "minus1")]
    prev = "x"
    for i in range(levels):
        nodes += [
            helper.make_node("Shape", [prev], [f"s{i}"]),
            helper.make_node("Gather", [f"s{i}", "zero"], [f"b{i}"], axis=0),
            helper.make_node("Concat", [f"b{i}", "minus1"], [f"t{i}"], axis=0),
            helper.make_node("Reshape", [prev, f"t{i}"], [f"r{i}"]),
            helper.make_node("Relu", [f"r{i}"], [f"y{i}"]),
        ]
        prev = f"y{i}"
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", "n"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_chained_shape_arithmetic_settles_in_one_call():
    graph, _ = load_static(_chained_reshapes(6), batch=3)
    for node in graph.nodes:
        for v in node.outputs:
            assert isinstance(v.type, TensorType) and v.type.is_static, (node, v.type)
    assert graph.outputs[0].type.shape == (3, 32)
    assert not any(n.op_type == "Shape" for n in graph.nodes)


def test_random_integer_inputs_stay_inside_the_tables_they_index():
    table = numpy_helper.from_array(np.zeros((2, 4), np.float32), "token_types")
    graph = helper.make_graph(
        [helper.make_node("Unsqueeze", ["ids", "axes"], ["u"]),
         helper.make_node("Gather", ["token_types", "u"], ["emb"], axis=0)], "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 64])],
        [helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, 1, 64, 4])],
        [table, numpy_helper.from_array(np.array([0], np.int64), "axes")])
    g = import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    ids = random_inputs(g)["ids"]
    assert ids.max() < 2 and ids.min() >= 0 and len(np.unique(ids)) == 2

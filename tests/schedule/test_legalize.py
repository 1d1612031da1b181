"""Operators a chip lacks, rewritten with ones it has: Squeeze, GlobalMaxPool and
ReduceMax run on Warboy's NPU as Reshape and MaxPool, and the program still verifies."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.schedule.legalize import legalize
from npuc.ir.decisions import log_of
from npuc.targets import get_target


def _model(path):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (6, 4, 3, 3)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalMaxPool", ["c"], ["p"]),
             helper.make_node("Squeeze", ["p", "axes"], ["s"]),
             helper.make_node("ReduceMax", ["s"], ["m"], axes=[1], keepdims=1)]
    g = helper.make_graph(nodes, "pools",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 6]),
                           helper.make_tensor_value_info("m", TensorProto.FLOAT, [1, 1])],
                          [w, axes])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_missing_operators_become_ones_the_chip_has(tmp_path):
    path = _model(str(tmp_path / "pools.onnx"))
    graph = npuc.load_model(path)
    assert legalize(graph, get_target("warboy-2pe")) == 3
    ops = [n.op_type for n in graph.nodes]
    assert "Squeeze" not in ops and "GlobalMaxPool" not in ops and "ReduceMax" not in ops
    assert {d.subject for d in log_of(graph).by_stage("legalize")} == {"p", "s", "m"}
    # a chip that has the operators keeps them
    kept = npuc.load_model(path)
    assert legalize(kept, get_target("cpu")) == 0


def test_legalized_program_verifies_on_the_npu(tmp_path):
    path = _model(str(tmp_path / "pools.onnx"))
    x = {"x": np.random.default_rng(1).normal(0, 1, (1, 4, 8, 8)).astype(np.float32)}
    r = npuc.verify(path, "warboy-2pe", inputs=x, calibration=[x])
    assert r.passed
    assert r.compiled.summary["nodes_on_cpu"] == 0

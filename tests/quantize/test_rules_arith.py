"""int8 forms of sums, Sub, Div and arithmetic with constant tensors: a LayerNorm and a
softmax written out with ReduceSum (as tf2onnx writes them) run in integers."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from npuc.compiler.executor.interpreter import execute
from npuc.compiler.frontend.onnx_import import import_onnx
from npuc.compiler.quantize import export_qdq, quantize, sqnr


def _model():
    """x [1,8,16] -> MatMul -> LayerNorm over axis 2 (sums, Sub, Div) -> *gamma +beta -> softmax."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (16, 16)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([2], np.int64), "axis"),
             numpy_helper.from_array(np.float32(1 / 16), "inv_n"),
             numpy_helper.from_array(np.float32(1e-5), "eps"),
             numpy_helper.from_array(rng.uniform(0.5, 1.5, (1, 1, 16)).astype(np.float32),
                                     "gamma"),
             numpy_helper.from_array(rng.uniform(-0.5, 0.5, (1, 1, 16)).astype(np.float32),
                                     "beta")]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("ReduceMean", ["h", "axis"], ["mean"], keepdims=1),
        helper.make_node("Sub", ["h", "mean"], ["d"]),
        helper.make_node("Mul", ["d", "d"], ["d2"]),
        helper.make_node("ReduceSum", ["d2", "axis"], ["ss"], keepdims=1),
        helper.make_node("Mul", ["ss", "inv_n"], ["var"]),
        helper.make_node("Add", ["var", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["sd"]),
        helper.make_node("Div", ["d", "sd"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["ng"]),
        helper.make_node("Add", ["ng", "beta"], ["z"]),
        helper.make_node("Exp", ["z"], ["e"]),
        helper.make_node("ReduceSum", ["e", "axis"], ["s"], keepdims=1),
        helper.make_node("Div", ["e", "s"], ["y"]),
    ]
    g = helper.make_graph(nodes, "ln_softmax",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16])],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def _inputs(seed):
    rng = np.random.default_rng(seed)
    return {"x": (rng.normal(0, 2, (1, 8, 16)) + np.arange(16) / 4).astype(np.float32)}


@pytest.fixture(scope="module")
def quantized():
    proto = _model()
    graph = import_onnx(proto)
    cal = [_inputs(s) for s in range(4)]
    return proto, graph, quantize(graph, "x220-compact", cal, progress=False)


def test_sums_sub_div_and_constant_tensors_run_in_int8(quantized):
    _, graph, q = quantized
    ops = {n.qualified_type for n in q.nodes}
    assert "npuc::QReduceSum" in ops and "npuc::QAdd" in ops and "npuc::QMul" in ops
    left = {n.op_type for n in q.nodes if n.domain == ""} - {"QuantizeLinear",
                                                                "DequantizeLinear"}
    assert not left & {"ReduceSum", "ReduceMean", "Sub", "Div", "Mul", "Add"}, left
    ev = _inputs(99)
    assert sqnr(execute(graph, ev)["y"], execute(q, ev)["y"]) > 15


def test_sub_negates_the_second_operand(quantized):
    _, _, q = quantized
    sub = q.node_by_name(next(n.name for n in q.nodes if n.op_type == "QAdd"
                              and n.attrs["b_multiplier"] < 0))
    assert sub is not None and sub.attrs["a_multiplier"] > 0


def test_qdq_export_runs_in_onnxruntime(quantized, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    _, _, q = quantized
    export_qdq(q, tmp_path / "q.onnx")
    onnx.checker.check_model(str(tmp_path / "q.onnx"))
    sess = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    ev = _inputs(7)
    theirs = sess.run(None, ev)[0]
    ours = execute(q, ev)["y"]
    assert sqnr(ours, theirs) > 15


def test_qreduce_sum_kernel_is_the_integer_sum():
    from npuc.compiler.executor.kernels import KernelContext, get_kernel

    x = np.random.default_rng(1).integers(-128, 128, (3, 5, 7)).astype(np.int8)
    attrs = {"axes": [1], "keepdims": 0, "x_zero_point": 3, "multiplier": 1 << 30,
             "shift": 1, "y_zero_point": 0}  # a multiplier of exactly 1
    out = get_kernel("QReduceSum", "npuc")([x], attrs, KernelContext(opset=18))[0]
    want = np.clip((x.astype(np.int64) - 3).sum(axis=1), -128, 127)
    assert out.shape == (3, 7) and np.array_equal(out, want)

"""Reductions give the same bits whatever the memory layout of their input: the IR runs a
Softmax or a mean on a transposed view where the program reads a contiguous SRAM buffer
(numpy sums a contiguous axis pairwise and a strided one in order)."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import npuc


def _model():
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Add", ["t", "t"], ["s"]),
             helper.make_node("Reshape", ["s", "shape"], ["r"]),
             helper.make_node("Softmax", ["r"], ["y"], axis=-1),
             helper.make_node("ReduceMean", ["t"], ["m"], axes=[1, 2], keepdims=1),
             helper.make_node("LayerNormalization", ["t", "g", "b"], ["n"], axis=-1)]
    graph = helper.make_graph(
        nodes, "layouts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 8]),
         helper.make_tensor_value_info("m", TensorProto.FLOAT, [1, 1, 1, 8]),
         helper.make_tensor_value_info("n", TensorProto.FLOAT, [1, 8, 8, 8])],
        [numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32),
                                 "w"),
         numpy_helper.from_array(np.array([1, 64, 8], np.int64), "shape"),
         numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "g"),
         numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("chip,precision", [("rngd", "bf16"), ("rngd", "fp8"),
                                            ("warboy-2pe", "int8"), ("atom", "fp16"),
                                            ("rngd", "none")])
def test_reductions_after_a_transpose_are_bit_identical(chip, precision):
    r = npuc.verify(_model(), chip, quantize=precision, calibration="random:2")
    assert r.first_difference is None, r.first_difference.describe()
    assert all(m["program_vs_ir_identical"] for m in r.outputs.values())

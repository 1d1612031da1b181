"""onnxruntime's quantize_dynamic output: DynamicQuantizeLinear and MatMulInteger run on
the NPU of chips with int8, and the program computes what onnxruntime computes."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.ir.decisions import log_of

TARGETS = ["warboy-2pe", "x220-compact"]


def _mlp(path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.2, (32, 48)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, (48,)).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.2, (48, 16)).astype(np.float32), "w2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    g = helper.make_graph(nodes, "mlp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])],
                          inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory):
    quantization = pytest.importorskip("onnxruntime.quantization")
    d = tmp_path_factory.mktemp("dyn")
    _mlp(str(d / "mlp.onnx"))
    paths = {}
    for kind in ("QInt8", "QUInt8"):
        paths[kind] = str(d / f"mlp_{kind}.onnx")
        quantization.quantize_dynamic(str(d / "mlp.onnx"), paths[kind],
                                      weight_type=getattr(quantization.QuantType, kind))
    x = {"x": np.random.default_rng(1).normal(0, 1, (1, 32)).astype(np.float32)}
    return paths, x


@pytest.mark.parametrize("target", TARGETS)
def test_integer_products_run_on_the_npu_and_match_onnxruntime(dynamic, target):
    paths, x = dynamic
    r = npuc.verify(paths["QInt8"], target, inputs=x, calibration=[x])
    assert r.passed
    placed = {d.data.get("op"): d.action for d in log_of(r.compiled.graph).by_stage("partition")}
    assert placed["MatMulInteger"] == "npu" and placed["DynamicQuantizeLinear"] == "npu"
    assert all(m["program_vs_ir_identical"] for m in r.outputs.values())


def test_uint8_weights_stay_on_the_host_with_the_reason(dynamic):
    paths, x = dynamic
    r = npuc.verify(paths["QUInt8"], "warboy-2pe", inputs=x, calibration=[x])
    assert r.passed
    why = [d.reason for d in log_of(r.compiled.graph).by_stage("partition")
           if d.data.get("op") == "MatMulInteger"]
    assert why and all("symmetric int8 weights" in w for w in why)

"""Pre-quantized models (onnxruntime's quantize_static in QDQ and QOperator formats, and
quantize_dynamic) compile with their own scales and verify against onnxruntime running
the quantized model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.frontend.onnx_import import import_onnx
from npuc.ir.decisions import log_of

ort = pytest.importorskip("onnxruntime")
oq = pytest.importorskip("onnxruntime.quantization")


def small_cnn() -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def c(name, *shape, s=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)

    n = helper.make_node
    nodes = [n("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), n("Relu", ["c1"], ["r1"]),
             n("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             n("Relu", ["c2"], ["r2"]),
             n("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             n("Conv", ["p", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1]),
             n("Add", ["c3", "p"], ["a"]), n("Relu", ["a"], ["r3"]),
             n("GlobalAveragePool", ["r3"], ["g"]), n("Flatten", ["g"], ["f"]),
             n("Gemm", ["f", "wf", "bf"], ["y"], transB=1)]
    inits = [c("w1", 8, 3, 3, 3), c("b1", 8, s=0.1), c("w2", 16, 8, 3, 3, s=0.2),
             c("b2", 16, s=0.1), c("w3", 16, 16, 3, 3, s=0.1), c("b3", 16, s=0.1),
             c("wf", 10, 16, s=0.2), c("bf", 10, s=0.1)]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class Reader(oq.CalibrationDataReader):
    def __init__(self):
        rng = np.random.default_rng(1)
        self.it = iter([{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)}
                        for _ in range(4)])

    def get_next(self):
        return next(self.it, None)


FORMATS = {
    "qdq": dict(quant_format=oq.QuantFormat.QDQ),
    "qoperator": dict(quant_format=oq.QuantFormat.QOperator),
    "qdq-per-channel": dict(quant_format=oq.QuantFormat.QDQ, per_channel=True),
    "qdq-uint8": dict(quant_format=oq.QuantFormat.QDQ, activation_type=oq.QuantType.QUInt8,
                      weight_type=oq.QuantType.QUInt8),
}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prequantized")
    src = str(folder / "cnn.onnx")
    onnx.save(small_cnn(), src)
    paths = {}
    for name, options in FORMATS.items():
        paths[name] = str(folder / f"cnn_{name}.onnx")
        oq.quantize_static(src, paths[name], Reader(), **options)
    return paths


def output_step(path):
    m = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    last = next(n for n in m.graph.node if n.output[0] == m.graph.output[0].name)
    if last.op_type == "DequantizeLinear":
        return float(inits[last.input[1]].reshape(-1)[0])
    return None


def _model_weight_scales(path):
    m = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return [inits[n.input[1]] for n in m.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0].startswith("w1")]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_prequantized_model_verifies_against_onnxruntime_on_warboy(quantized, fmt):
    r = npuc.verify(quantized[fmt], "warboy-2pe")
    assert r.passed, r.to_json()
    assert r.precision == "int8" and r.reference == "onnxruntime"
    log = log_of(r.compiled.graph)
    assert [d for d in log if d.stage == "prequantized" and d.action == "model parameters"]
    assert not [d for d in log if d.stage == "quantize" and "random" in d.action]
    step = output_step(quantized[fmt])
    if step is not None:  # integer rounding: within two steps of the model's output grid
        assert r.outputs["y"]["max_abs_error"] <= 2 * step + 1e-6
    qconv = [n for n in r.compiled.graph.nodes if n.op_type == "QConv"]
    assert len(qconv) == 3


def test_verify_with_inputs_keeps_the_model_scales(quantized):
    """The inputs given to verify are not calibration samples: the model's own scales are
    used (no recalibration, no accuracy search moving layers to float), and the result
    matches onnxruntime running the quantized model within its rounding."""
    x = {"x": np.random.default_rng(5).standard_normal((1, 3, 16, 16)).astype(np.float32)}
    r = npuc.verify(quantized["qdq"], "warboy-2pe", inputs=x)
    log = log_of(r.compiled.graph)
    assert [d for d in log if d.stage == "prequantized" and d.action == "model parameters"]
    assert not [d for d in log if d.action == "model parameters not used"]
    assert not [d for d in log if d.stage == "accuracy"]
    assert not any("calibrated on the inputs" in n for n in r.notes)
    assert r.passed and r.outputs["y"]["max_abs_error"] <= 2 * output_step(quantized["qdq"])
    # samples the user gives as calibration still ask for quantizing again
    again = npuc.compile(quantized["qdq"], "warboy-2pe", calibration=[x])
    assert [d for d in log_of(again.graph) if d.action == "model parameters not used"]


def test_model_weight_scales_are_kept(quantized):
    r = npuc.compile(quantized["qdq"], "warboy-2pe")
    first = next(n for n in r.graph.nodes if n.op_type == "QConv")
    want = _model_weight_scales(quantized["qdq"])[0]
    np.testing.assert_array_equal(np.asarray(first.inputs[1].type.quant.scale).reshape(-1),
                                  want.reshape(-1))


def test_asymmetric_weights_are_quantized_again_with_a_note(quantized):
    r = npuc.compile(quantized["qdq-uint8"], "warboy-2pe")
    actions = {d.action for d in log_of(r.graph) if d.stage == "prequantized"}
    assert "weights quantized again" in actions


@pytest.mark.parametrize("target", ["rngd", "atom", "x220-enterprise"])
def test_prequantized_model_runs_int8_where_the_chip_has_it(quantized, target):
    r = npuc.verify(quantized["qdq"], target)
    assert r.passed and r.precision == "int8", r.to_json()


def test_float_precision_on_request_dequantizes_with_a_note(quantized):
    r = npuc.verify(quantized["qdq"], "rngd", quantize="bf16")
    assert r.passed and r.precision == "bf16", r.to_json()
    notes = [d.reason for d in log_of(r.compiled.graph) if d.action == "model parameters not used"]
    assert notes and "dequantized" in notes[0]


def dynamic_model(folder) -> str:
    rng = np.random.default_rng(2)
    hidden = 8

    def c(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32),
                                       name)

    n = helper.make_node
    nodes = [n("MatMul", ["x", "w0"], ["m"]), n("Add", ["m", "b0"], ["a"]),
             n("LSTM", ["a", "W", "R", "B"], ["h", "hn", "cn"], hidden_size=hidden),
             n("Squeeze", ["hn", "axis"], ["s"]), n("MatMul", ["s", "w1"], ["y"])]
    inits = [c("w0", 16, 12), c("b0", 12), c("W", 1, 4 * hidden, 12),
             c("R", 1, 4 * hidden, hidden), c("B", 1, 8 * hidden), c("w1", hidden, 5),
             numpy_helper.from_array(np.array([0], np.int64), "axis")]
    graph = helper.make_graph(
        nodes, "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])], inits)
    src, out = str(folder / "dyn.onnx"), str(folder / "dyn_q.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), src)
    # reduce_range: onnxruntime's own advice for x86 without VNNI, whose uint8 x int8
    # kernels otherwise saturate 16-bit pair sums and drift from the exact result
    oq.quantize_dynamic(src, out, weight_type=oq.QuantType.QInt8, reduce_range=True)
    return out


def test_dynamically_quantized_model_imports_runs_and_compiles(tmp_path):
    path = dynamic_model(tmp_path)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "MatMulInteger" in ops
    x = np.random.default_rng(3).standard_normal((4, 2, 16)).astype(np.float32)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = execute(import_onnx(path), {"x": x})["y"]
    # onnxruntime also quantizes the LSTM's input and hidden state at run time
    np.testing.assert_allclose(got, want, atol=1e-2)
    r = npuc.verify(path, "warboy-2pe", inputs={"x": x})
    assert r.passed, r.to_json()


def fake_quantized_conv() -> onnx.ModelProto:
    """QDQ as PyTorch's quantization-aware export writes it: float weights behind their
    own QuantizeLinear -> DequantizeLinear (per channel), activations likewise."""
    rng = np.random.default_rng(4)
    w = (rng.standard_normal((6, 3, 3, 3)) * 0.3).astype(np.float32)
    # scales wider than the weights need: npuc's own choice would differ
    ws = (np.abs(w).reshape(6, -1).max(axis=1) / 100).astype(np.float32)
    t = numpy_helper.from_array
    inits = [t(w, "w"), t(ws, "ws"), t(np.zeros(6, np.int8), "wz"),
             t((rng.standard_normal(6) * 0.1).astype(np.float32), "b"),
             t(np.float32(0.03), "xs"), t(np.int8(0), "xz"),
             t(np.float32(0.02), "ys"), t(np.int8(-128), "yz")]
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             n("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             n("QuantizeLinear", ["w", "ws", "wz"], ["wq"], axis=0),
             n("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
             n("Conv", ["xd", "wd", "b"], ["c"], pads=[1, 1, 1, 1]),
             n("Relu", ["c"], ["r"]),
             n("QuantizeLinear", ["r", "ys", "yz"], ["rq"]),
             n("DequantizeLinear", ["rq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(
        nodes, "qat", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fake_quantized_weights_keep_their_per_channel_scales():
    model = fake_quantized_conv()
    r = npuc.verify(model, "warboy-2pe")
    assert r.passed and r.precision == "int8", r.to_json()
    assert r.outputs["y"]["max_abs_error"] <= 0.02 + 1e-6  # one output step
    qconv = next(n for n in r.compiled.graph.nodes if n.op_type == "QConv")
    want = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "ws"))
    np.testing.assert_array_equal(qconv.inputs[1].type.quant.scale, want)

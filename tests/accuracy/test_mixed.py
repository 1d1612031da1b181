"""Mixed precision per layer, weight-only and grouped weights, accuracy recovery."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npuc
from npuc.compiler.driver import compare, compile
from npuc.compiler.executor.diagnose import same_bits
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.executor.simulator import simulate
from npuc.compiler.quantize import quantize
from npuc.compiler.quantize.weightonly import parse_weight_only, quantize_grouped
from npuc.ir.decisions import log_of
from npuc.ir.errors import NpucError

from .models import mlp


def _cal(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(size=(1, 16)).astype(np.float32)} for _ in range(n)]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(8, 0), (4, 0), (4, 32), (8, 64)]), st.integers(1, 150),
       st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_grouped_weights_round_within_half_a_step(scheme, k, n, seed):
    from npuc.compiler.executor.kernels.quant import dequantize_linear

    bits, group = scheme
    w = np.random.default_rng(seed).normal(size=(k, n)).astype(np.float32)
    wq, scale, axis, block = quantize_grouped(w, bits, group, 0)
    attrs = {"axis": axis, "block_size": block} if block else {"axis": axis}
    back = dequantize_linear([wq, scale], attrs, None)[0]
    step = np.repeat(scale, group, axis=0)[:k] if group else scale[None, :]
    assert np.all(np.abs(back - w) <= step / 2 + 1e-6)
    top = 127 if bits == 8 else 7
    assert np.abs(wq.astype(np.int64)).max() <= top


def test_weight_only_scheme_names():
    assert parse_weight_only("w4a16-g128") == (4, 128, None)
    assert parse_weight_only("w8a16") == (8, 0, None)
    assert parse_weight_only("bf16") is None
    with pytest.raises(NpucError, match="group size"):
        parse_weight_only("w4a16-g100")


@pytest.mark.parametrize("target,precision,layers", [
    ("rngd", "int8", {"fc1": "w4a16-g32", "fc2": "fp8-tensor"}),
    ("rngd", "int8", {"fc1": "bf16"}),
    ("rngd", "fp8", {"fc2": "w8a16"}),
    ("atom", "int8", {"fc1": "fp16", "fc2": "w8a16"}),
])
def test_mixed_programs_compute_what_their_graph_computes(target, precision, layers):
    c = compile(mlp(), target, quantize=precision, calibration=_cal(), layers=layers,
                accuracy="off")
    feeds = _cal(1, seed=5)[0]
    got = simulate(c.program, c.weights, feeds)["logits"]
    want = execute(c.graph, feeds)["logits"]
    assert compare(got, want)["sqnr_db"] == 200.0 and same_bits(got, want).all()
    assert c.graph.meta["quantize"]["layers"] == layers


def test_layer_schemes_the_chip_lacks_are_refused():
    g = npuc.import_onnx(mlp())
    with pytest.raises(NpucError, match="fc1: w4a16 needs int4"):
        quantize(g, "atom", _cal(), precision="int8", layers={"fc1": "w4a16"}, progress=False)
    with pytest.raises(NpucError, match="no node named 'fc9'"):
        quantize(g, "rngd", _cal(), precision="int8", layers={"fc9": "bf16"}, progress=False)


def test_recovery_moves_sensitive_layers_until_the_requirement_holds():
    g = npuc.import_onnx(mlp())
    q = quantize(g, "rngd", _cal(), precision="int8", accuracy="sqnr>=45", progress=False)
    steps = [d for d in log_of(q) if d.stage == "accuracy"]
    assert steps[-1].action == "met", [d.reason for d in steps]
    kept = [d for d in steps[:-1] if d.data["kept"]]
    assert kept and all("estimated latency cost" in d.reason for d in kept)
    assert set(q.meta["quantize"]["layers"]) <= {"fc1", "fc2"}
    plain = quantize(g, "rngd", _cal(), precision="int8", progress=False)
    assert plain.meta["quantize"]["layers"] == {}
    assert not [d for d in log_of(plain) if d.stage == "accuracy"]


def test_report_draws_the_accuracy_latency_curve():
    c = compile(mlp(), "rngd", quantize="int8", calibration=_cal(8), accuracy="sqnr>=45")
    html = c.files["report.html"]
    assert "<h2>Accuracy and latency</h2>" in html and "<polyline" in html
    again = compile(mlp(), "rngd", quantize="int8", calibration=_cal(8), accuracy="sqnr>=45")
    assert again.files == c.files  # the same inputs give the same artifacts
    plain = compile(mlp(), "rngd", quantize="int8", calibration=_cal(8), accuracy="off")
    assert "Accuracy and latency" not in plain.files["report.html"]


def test_smoothquant_alpha_is_searched_on_the_calibration_data():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = rng.normal(size=(16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")], "outliers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])],
        [numpy_helper.from_array(w, "w")])
    g = npuc.import_onnx(helper.make_model(graph))
    cal = []
    for _ in range(8):
        x = rng.normal(size=(1, 16)).astype(np.float32)
        x[:, 3] *= 60.0  # one outlier column, as after a LayerNorm
        cal.append({"x": x})
    q = quantize(g, "warboy-2pe", cal, smoothquant="search", progress=False)
    chosen = [d for d in log_of(q) if d.action.startswith("smoothquant alpha")]
    assert len(chosen) == 1 and "0.3:" in chosen[0].reason and "0.85:" in chosen[0].reason

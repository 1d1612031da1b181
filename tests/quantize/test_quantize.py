"""End to end: quantize small models, run them, compare with float and onnxruntime."""

import numpy as np
import pytest

import npuc
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.quantize import (
    EntropyObserver,
    MinMaxObserver,
    export_qdq,
    quantize,
    report,
    sqnr,
)
from npuc.ir.errors import NpucError


@pytest.fixture(scope="module")
def resnet():
    g = npuc.load_model("zoo:resnet-tiny")
    cal = [npuc.zoo.sample_inputs("resnet-tiny", batch=2, seed=s) for s in range(3)]
    ev = npuc.zoo.sample_inputs("resnet-tiny", batch=2, seed=99)
    return g, cal, ev


def test_int8_resnet_runs_in_integers(resnet):
    g, cal, ev = resnet
    q = quantize(g, "warboy-2pe", cal, progress=False)
    ops = {n.qualified_type for n in q.nodes}
    assert {"npuc::QConv", "npuc::QAdd", "npuc::QMatMul"} <= ops
    assert "Conv" not in ops and "BatchNormalization" not in ops
    assert sqnr(execute(g, ev)["output"], execute(q, ev)["output"]) > 20
    # warboy: asymmetric activations, weights in [-127, 127]
    w = next(n for n in q.nodes if n.op_type == "QConv").inputs[1].const
    assert w.min() >= -127


def test_keep_float_and_report(resnet):
    g, cal, ev = resnet
    q = quantize(g, "warboy", cal, keep_float=["/conv1/Conv"], progress=False)
    assert q.node_by_name("/conv1/Conv").op_type == "Conv"
    rows = report(q, ev)
    assert rows[-1].value == "output" and rows[-1].cosine > 0.99


def test_qdq_export_agrees_with_onnxruntime(resnet, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    g, cal, ev = resnet
    q = quantize(g, "x220-compact", cal, progress=False)
    export_qdq(q, tmp_path / "q.onnx")
    sess = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    theirs = sess.run(None, ev)[0]
    ours = execute(q, ev)["output"]
    # requantization rounds differently (fixed point vs float): a few output levels
    scale = float(next(n for n in q.nodes if n.op_type == "QMatMul").attrs["y_scale"])
    assert np.abs(theirs - ours).max() <= 6 * scale
    assert sqnr(ours, theirs) > 25


def test_fp8_and_bf16_for_rngd(resnet):
    g, cal, ev = resnet
    ref = execute(g, ev)["output"]
    q8 = quantize(g, "rngd", cal, precision="fp8", progress=False)
    assert any(v.type.dtype.name.startswith("f8") for v in q8.values()
               if getattr(v.type, "dtype", None) is not None)
    assert sqnr(ref, execute(q8, ev)["output"]) > 20
    qb = quantize(g, "rngd", None, progress=False)  # bf16: no calibration needed
    assert sqnr(ref, execute(qb, ev)["output"]) > 35


def test_bert_tiny_int8():
    g = npuc.load_model("zoo:bert-tiny")
    cal = [npuc.zoo.sample_inputs("bert-tiny", batch=2, seed=s) for s in range(3)]
    ev = npuc.zoo.sample_inputs("bert-tiny", batch=2, seed=99)
    q = quantize(g, "warboy-2pe", cal, progress=False)
    assert sum(n.op_type == "QMatMul" for n in q.nodes) >= 12
    name = g.outputs[0].name
    assert sqnr(execute(g, ev)[name], execute(q, ev)[name]) > 20


def test_errors_are_one_line():
    g = npuc.load_model("zoo:resnet-tiny")
    with pytest.raises(NpucError, match="unknown target"):
        quantize(g, "no-such-chip", [], progress=False)
    with pytest.raises(NpucError, match="does not compute in fp8"):
        quantize(g, "warboy", [], precision="fp8", progress=False)
    with pytest.warns(UserWarning, match="random"):
        quantize(g, "warboy", None, progress=False)


def test_histograms_merge_as_ranges_grow():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20000).astype(np.float32)
    one, two = EntropyObserver(), EntropyObserver()
    one.observe(x)
    two.observe(x[:10000] * 0.5)
    two.observe(x[10000:])
    assert two.hist.sum() == one.hist.sum()
    lo1, hi1 = one.range()
    lo2, hi2 = two.range()
    assert abs(hi1 - hi2) / hi1 < 0.25


def test_entropy_clips_outliers_minmax_does_not():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(100000), [60.0]]).astype(np.float32)
    mm, en = MinMaxObserver(), EntropyObserver()
    mm.observe(x)
    en.observe(x)
    assert mm.range()[1] == 60.0
    assert en.range()[1] < 20

"""Numeric hazards are found at compile time, named, and the program keeps the float
answer: a log-mel front end whose power spectrogram overflows fp16 and collapses in int8
and fp8 per-tensor scales; NaN and infinite weights."""

import numpy as np
import pytest

import npuc
from npuc.ir.decisions import log_of
from npuc.ir.errors import ModelError

from .logmel import model, samples


@pytest.fixture(scope="module")
def logmel(tmp_path_factory):
    return model(tmp_path_factory.mktemp("logmel") / "logmel.onnx")


@pytest.mark.parametrize("chip,precision,kind", [("atom", "fp16", "fp16 overflow"),
                                                 ("warboy-2pe", "int8", "int8 range collapse"),
                                                 ("atom", "int8", "int8 range collapse"),
                                                 ("rngd", "fp8", "fp8 range collapse")])
def test_hazard_is_reported_and_the_answer_kept(logmel, chip, precision, kind):
    held_out = samples(3, first=100)
    r = npuc.verify(logmel, chip, quantize=precision, calibration=samples(4),
                    inputs=held_out[0])
    found = [d for d in log_of(r.compiled.graph) if d.stage == "numerics"]
    # the spectrogram (or its SmoothQuant-scaled copy) feeding the filterbank product
    assert any(d.action == kind and d.subject.startswith("spec") and "mel" in d.data["nodes"]
               for d in found), [str(d) for d in found]
    kept = [d for d in log_of(r.compiled.graph).about("mel") if d.action == "kept float"]
    assert kept and kept[-1].reason.startswith(kind)
    assert r.passed, r.to_json()
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.executor.simulator import simulate
    from npuc.compiler.schedule.prepare import load_static

    float_graph, _ = load_static(logmel, 1)
    for feeds in held_out:
        got = simulate(r.compiled.program, r.compiled.weights, feeds)["logits"]
        want = execute(float_graph, feeds)["logits"]
        assert np.isfinite(got).all()
        agree = np.mean(got.argmax(-1) == want.argmax(-1))
        assert agree >= 0.95, agree


def test_without_the_check_fp16_gives_nan(logmel, monkeypatch):
    """The hazard is real: with the check switched off, fp16 rounding turns the
    spectrogram into infinities and the product with the filterbank's zeros into NaN."""
    from npuc.compiler.quantize import hazards

    monkeypatch.setattr(hazards, "FP16_MAX", float("inf"))
    r = npuc.compile(logmel, "atom", quantize="fp16", calibration=samples(2))
    from npuc.compiler.executor.interpreter import execute

    assert np.isnan(execute(r.graph, samples(1, first=100)[0])["logits"]).any()


def test_cli_prints_the_hazard_on_the_terminal(logmel, tmp_path):
    import subprocess
    import sys

    np.savez(tmp_path / "cal.npz", **samples(1)[0])
    out = subprocess.run([sys.executable, "-m", "npuc", "compile", logmel, "--target", "atom",
                          "--quantize", "fp16", "--calibration", str(tmp_path / "cal.npz"),
                          "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1 and "fp16 overflow" in lines[0] and "mel" in lines[0]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weight_is_refused_naming_the_initializer(tmp_path, bad):
    import onnx
    from onnx import numpy_helper

    path = model(tmp_path / "m.onnx")
    proto = onnx.load(path)
    w = numpy_helper.to_array(proto.graph.initializer[2]).copy()
    w[3, 1] = bad
    proto.graph.initializer[2].CopyFrom(numpy_helper.from_array(w, "w"))
    onnx.save(proto, path)
    with pytest.raises(ModelError, match=r"m\.onnx: initializer 'w' .* holds (NaN|an infinity)"):
        npuc.compile(path, "rngd")


def test_infinite_mask_constants_are_meant(tmp_path):
    """-inf in a mask constant added before a Softmax is not a broken weight."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    mask = np.zeros((1, 4), np.float32)
    mask[0, 2] = -np.inf
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["s"], name="scores"),
         helper.make_node("Add", ["s", "mask"], ["masked"], name="mask"),
         helper.make_node("Softmax", ["masked"], ["p"], axis=-1, name="softmax")],
        "masked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w"),
         numpy_helper.from_array(mask, "mask")])
    path = str(tmp_path / "masked.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    r = npuc.verify(path, "rngd")
    assert r.passed, r.to_json()
    from npuc.compiler.executor.simulator import simulate

    p = simulate(r.compiled.program, r.compiled.weights,
                 {"x": rng.standard_normal((1, 8)).astype(np.float32)})["p"]
    assert p[0, 2] == 0 and np.isclose(p.sum(), 1, atol=1e-2)

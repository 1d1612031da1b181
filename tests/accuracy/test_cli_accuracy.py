"""verify over a folder of samples, --accuracy and --layer from the command line."""

import json

import numpy as np
import onnx

from npuc.compiler.cli import main

from .models import mlp


def _setup(tmp_path, n=6):
    onnx.save(mlp(), tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    folder = tmp_path / "held"
    folder.mkdir()
    for i in range(n):
        np.savez(folder / f"s{i}.npz", x=rng.normal(size=(1, 16)).astype(np.float32))
    np.savez(tmp_path / "cal.npz", x=rng.normal(size=(16, 16)).astype(np.float32))
    return str(tmp_path / "m.onnx")


def test_verify_over_a_folder_reports_answer_agreement(tmp_path, capsys):
    model = _setup(tmp_path)
    code = main(["verify", model, "-t", "warboy-2pe", "--calibration",
                 str(tmp_path / "cal.npz"), "--inputs", str(tmp_path / "held")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "over 6 samples" in out and "samples changed their answer" in out
    assert "program vs IR identical" in out
    code = main(["verify", model, "-t", "warboy-2pe", "--calibration",
                 str(tmp_path / "cal.npz"), "--inputs", str(tmp_path / "cal.npz"), "--json",
                 "--agree", "argmax", "--topk", "2"])
    data = json.loads(capsys.readouterr().out)
    assert data["agreement"]["samples"] == 16
    logits = data["agreement"]["outputs"]["logits"]
    assert logits["mode"] == "argmax" and 0 <= logits["topk_overlap"] <= 1


def test_a_requirement_drives_the_compile_and_judges_verify(tmp_path, capsys):
    model = _setup(tmp_path)
    # 90 dB needs float32: on warboy the recovery puts the layers on the CPU
    code = main(["verify", model, "-t", "warboy-2pe", "--calibration", "random:2",
                 "--inputs", str(tmp_path / "held"), "--accuracy", "sqnr>=90"])
    out = capsys.readouterr()
    assert code == 0 and "requirement sqnr>=90: met" in out.out, out.out
    assert "RANDOM" in out.err


def test_quantize_with_layers_and_a_requirement(tmp_path, capsys):
    model = _setup(tmp_path)
    code = main(["quantize", model, "-t", "rngd", "--precision", "int8", "-c",
                 str(tmp_path / "cal.npz"), "-o", str(tmp_path / "q.npuir"),
                 "--layer", "fc2=w4a16-g32", "--accuracy", "sqnr>=40"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "accuracy: mlp: met" in out or "accuracy: mlp: not met" in out
    assert main(["quantize", model, "-t", "rngd", "-c", "random:2", "-o",
                 str(tmp_path / "q.npuir"), "--accuracy", "argmax>=3"]) == 2
    assert "--accuracy" in capsys.readouterr().err


def test_a_named_answer_decides_the_int8_verdict_instead_of_sqnr(tmp_path, capsys):
    """Once the answer is named, it decides an int8 output's verdict: a program within
    the SQNR tolerance fails when an answer changed, and one far below it passes when
    the answers are within the requirement."""
    from npuc.compiler import verification

    model = _setup(tmp_path)
    base = ["verify", model, "-t", "warboy-2pe", "--calibration", str(tmp_path / "cal.npz"),
            "--inputs", str(tmp_path / "held"), "--json"]
    # the untrained model's one flip is a near tie, but a classifier's one answer counts
    # however near its float scores were
    assert main(base + ["--agree", "argmax"]) == 1
    near = json.loads(capsys.readouterr().out)["agreement"]["outputs"]["logits"]
    assert (near["changed"], near["undecided_flips"]) == (1, 0)
    args = base + ["--margin", "0", "--accuracy", "off"]  # every flip counts
    assert main(args) == 0  # 36 dB: within int8's 12 dB, though one answer of 6 changed
    plain = json.loads(capsys.readouterr().out)
    assert plain["outputs"]["logits"]["judged_by"] == "tolerance"
    assert plain["agreement"]["outputs"]["logits"]["changed"] == 1
    assert main(args + ["--agree", "argmax"]) == 1
    named = json.loads(capsys.readouterr().out)["outputs"]["logits"]
    assert named["judged_by"] == "answer" and named["failed"] == ["answer"]
    saved = dict(verification.TOLERANCE)
    verification.TOLERANCE["int8"] = (200.0, 1.0)  # no int8 program reaches it
    try:
        assert main(args[:-2] + ["--accuracy", "argmax<=20%"]) == 0
        loose = json.loads(capsys.readouterr().out)["outputs"]["logits"]
    finally:
        verification.TOLERANCE.update(saved)
    assert loose["judged_by"] == "answer" and loose["failed"] == []
    assert loose["sqnr_db"] < 200


def test_the_answer_bound_follows_the_requirement():
    from npuc.compiler.quantize.requirement import parse_requirement
    from npuc.compiler.verify_samples import answer_bound

    assert answer_bound("int8", "argmax", None) == 0.01
    assert answer_bound("int8", "ctc", parse_requirement("ctc<=5%")) == 0.05
    assert answer_bound("fp8", "auto", None) is None
    assert answer_bound("int8", "auto", parse_requirement("answer<=2%")) == 0.02
    assert answer_bound("bf16", "argmax", None) is None

"""The compile, verify, explain and report commands, and their answers to mistakes."""

import json

import pytest

from npuc.compiler.cli import main


def test_compile_explain_report(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["compile", "zoo:resnet-tiny", "--target", "atom", "--quantize", "none",
                 "-o", str(out), "--schedule-out", str(tmp_path / "s.json")]) == 0
    assert "estimated latency" in capsys.readouterr().out
    assert main(["explain", str(out)]) == 0
    text = capsys.readouterr().out
    assert "runs on: NPU" in text and "tile:" in text
    assert main(["report", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith("report.html")


def test_verify_json(capsys):
    assert main(["verify", "zoo:resnet-tiny", "--target", "rngd", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and data["reference"] == "onnxruntime"


def test_explain_model_names_cpu_reasons(capsys):
    assert main(["explain", "zoo:bert-tiny", "--target", "warboy-2pe", "--quantize",
                 "none"]) == 0
    assert "runs on: CPU - operator" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["compile", "missing.onnx", "--target", "atom", "-o", "x"],
    ["compile", "zoo:resnet-tiny", "--target", "no-such-chip", "-o", "x"],
    ["compile", "zoo:resnet-tiny", "--target", "warboy-2pe", "--quantize", "bf16", "-o", "x"],
    ["verify", "zoo:resnet-tiny", "--target", "atom", "--calibration", "random:x"],
    ["explain", "zoo:resnet-tiny"],
    ["report", "no-such-folder"],
])
def test_bad_input_exits_2_with_one_line(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("npuc: error:") and "\n" not in err


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ('{"format": "other"}', "not an npuc schedule file"),
    ('{"format": "npuc-schedule", "version": 9}', "version 9"),
    ('{"format": "npuc-schedule", "version": 1, "target": "rngd", "groups": []}',
     "made for target 'rngd'"),
    ('{"format": "npuc-schedule", "version": 1, "target": "atom", "groups": '
     '[{"nodes": ["nope"], "tile": {"axis": 2, "rows": 1}}]}', "'nope' is not in the model"),
    ('{"format": "npuc-schedule", "version": 1, "target": "atom", "groups": '
     '[{"nodes": ["x"], "tile": {"axis": 2, "rows": 0}}]}', "positive integer"),
])
def test_bad_schedule_files(content, message, tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(content)
    assert main(["compile", "zoo:resnet-tiny", "--target", "atom", "--quantize", "none",
                 "--schedule-in", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1

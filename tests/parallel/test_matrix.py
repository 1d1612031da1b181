"""``npuc matrix``: every model for every chip, cells fanned out, a table and JSON."""

import json

from npuc.compiler.cli import main
from npuc.compiler.matrix import cells, model_name, table


def test_matrix_rows_errors_and_json(tmp_path, capsys):
    out = tmp_path / "m.json"
    rc = main(["matrix", "zoo:resnet-tiny", "-t", "warboy,rngd", "--quantize", "fp8",
               "--workers", "2", "--json", str(out), "-o", str(tmp_path / "programs")])
    text = capsys.readouterr().out
    assert rc == 1  # warboy has no fp8: that cell is an error, the run says so
    rows = json.loads(out.read_text())
    assert [(r["model"], r["target"]) for r in rows] == [("zoo:resnet-tiny", "warboy"),
                                                        ("zoo:resnet-tiny", "rngd")]
    assert not rows[0]["passed"] and "fp8" in rows[0]["error"]
    assert rows[1]["passed"] and rows[1]["precision"] == "fp8" and rows[1]["error"] is None
    assert "seconds" not in rows[1]
    assert (tmp_path / "programs" / "resnet-tiny" / "rngd" / "program.json").is_file()
    assert "1 of 2 passed" in text and "error" in text


def test_bad_target_or_model_is_a_usage_error(tmp_path, capsys):
    assert main(["matrix", "zoo:resnet-tiny", "-t", "warboy,nochip"]) == 2
    assert "unknown target 'nochip'" in capsys.readouterr().err
    assert main(["matrix", str(tmp_path / "none.onnx"), "-t", "warboy"]) == 2
    assert "none.onnx: no such file" in capsys.readouterr().err


def test_cells_and_table():
    work = cells(["zoo:a", "dir/b.onnx"], ["warboy", "chips/x.toml"], output_dir="out")
    assert [(c.model, c.target) for c in work] == [
        ("zoo:a", "warboy"), ("zoo:a", "chips/x.toml"),
        ("dir/b.onnx", "warboy"), ("dir/b.onnx", "chips/x.toml")]
    assert work[3].output_dir == "out/b/x" and model_name("zoo:bert-base") == "bert-base"
    lines = table([{"model": "m", "target": "t", "passed": False, "error": "bad op"}])
    assert "bad op" in lines[2] and lines[-1] == "0 of 1 passed"

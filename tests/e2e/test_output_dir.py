"""The output folder of ``npuc compile``: created with its parents, never half written."""

from npuc.compiler.cli import main


def test_compile_creates_missing_parent_folders(tmp_path, capsys):
    out = tmp_path / "out" / "deeper" / "resnet"
    assert main(["compile", "zoo:resnet-tiny", "--target", "warboy-2pe", "--calibration",
                 "random:2", "-o", str(out)]) == 0
    assert (out / "summary.json").is_file() and (out / "report.html").is_file()
    assert not [p for p in out.parent.iterdir() if ".npuc-" in p.name]
    assert (out / ".npuc-output").is_file()


def test_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    code = main(["compile", "zoo:resnet-tiny", "--target", "warboy-2pe", "--calibration",
                 "random:2", "-o", str(blocker)])
    assert code == 2 and "is not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "x"

"""``npuc quantize`` on the command line."""

import numpy as np

from npuc.compiler.cli import main


def test_quantize_npz_to_onnx_with_report(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cal.npz", input=rng.standard_normal((3, 3, 32, 32)).astype(np.float32))
    out = tmp_path / "q.onnx"
    rc = main(["quantize", "zoo:resnet-tiny", "--target", "warboy-2pe", "--calibration",
               str(tmp_path / "cal.npz"), "-o", str(out), "--report"])
    assert rc == 0 and out.exists()
    text = capsys.readouterr().out
    assert "SQNR" in text and "output" in text


def test_random_calibration_warns_and_npuir(tmp_path, capsys):
    rc = main(["quantize", "zoo:resnet-tiny", "--target", "warboy", "--calibration", "random:2",
               "-o", str(tmp_path / "q.npuir")])
    assert rc == 0
    assert "RANDOM" in capsys.readouterr().err
    assert "npuc::QConv" in (tmp_path / "q.npuir").read_text()


def test_bad_calibration_is_a_one_line_error(tmp_path, capsys):
    rc = main(["quantize", "zoo:resnet-tiny", "--target", "warboy", "--calibration",
               str(tmp_path / "missing.npz"), "-o", str(tmp_path / "q.onnx")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("npuc: error:") and err.count("\n") == 1

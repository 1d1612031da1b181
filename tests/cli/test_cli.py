"""The npuc command as a user meets it."""

import subprocess
import sys

import numpy as np
import pytest

from npuc.compiler.cli import main


def test_help_imports_nothing_heavy():
    code = ("import sys; from npuc.compiler.cli import build_parser; build_parser()"
            ".format_help(); heavy = [m for m in ('numpy', 'onnx', 'numba', 'lark') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_version(capsys):
    import npuc

    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert capsys.readouterr().out.strip() == f"npuc {npuc.__version__}"


def test_convert_onnx_to_text_and_back(tmp_path, capsys):
    assert main(["convert", "zoo:resnet-tiny", "-o", str(tmp_path / "m.npuir")]) == 0
    assert (tmp_path / "m.npuir.bin").exists()
    assert main(["convert", str(tmp_path / "m.npuir"), "-o", str(tmp_path / "m.onnx")]) == 0
    assert main(["convert", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "n.npuir")]) == 0
    a = (tmp_path / "m.npuir").read_text()
    b = (tmp_path / "n.npuir").read_text().replace("n.npuir.bin", "m.npuir.bin")
    assert a == b


def test_run_writes_outputs(tmp_path, capsys):
    from npuc import zoo

    np.savez(tmp_path / "in.npz", **zoo.sample_inputs("resnet-tiny"))
    code = main(["run", "zoo:resnet-tiny", "--inputs", str(tmp_path / "in.npz"), "-o",
                 str(tmp_path / "out.npz")])
    assert code == 0
    out = np.load(tmp_path / "out.npz")
    assert out["output"].shape == (1, 10)
    assert "peak intermediate memory" in capsys.readouterr().out


def test_run_optimizes_and_multiplies_in_float32_unless_asked_otherwise(tmp_path):
    import npuc
    from npuc import zoo
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.passes.manager import optimize

    feeds = zoo.sample_inputs("bert-tiny", batch=2)
    np.savez(tmp_path / "in.npz", **feeds)
    graph = npuc.load_model(zoo.build("bert-tiny"))
    optimized = optimize(graph, level=2)
    assert len(list(optimized.nodes)) < len(list(graph.nodes))
    for mode in ("float32", "float64"):
        for level, ran in (("2", optimized), ("0", graph)):
            args = ["run", "zoo:bert-tiny", "--inputs", str(tmp_path / "in.npz"), "-o",
                    str(tmp_path / f"{mode}{level}.npz"), "-O", level]
            assert main(args + ([] if mode == "float32" else ["--products", "float64"])) == 0
            got = np.load(tmp_path / f"{mode}{level}.npz")
            want = execute(ran, feeds, products=mode)
            assert all(np.array_equal(got[k], v) for k, v in want.items())
    with pytest.raises(SystemExit) as e:
        main(["run", "zoo:bert-tiny", "--products", "float16"])
    assert e.value.code == 2

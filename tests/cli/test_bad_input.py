"""Every kind of bad input gets exit code 2 and one sentence naming what and where."""

import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from npuc import zoo
from npuc.compiler.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(capsys, argv, *words):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npuc: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def model_with(nodes, inputs, outputs, inits=(), opset=17, domains=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(g, opset_imports=ops)


def vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def save(tmp_path, model, name="m.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return str(path)


def test_empty_file(tmp_path, capsys):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    assert_refused(capsys, ["convert", str(p), "-o", str(tmp_path / "o.npuir")], str(p), "empty")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_bytes(tmp_path, capsys, seed):
    p = tmp_path / "noise.onnx"
    p.write_bytes(np.random.default_rng(seed).bytes(4096))
    assert_refused(capsys, ["convert", str(p), "-o", str(tmp_path / "o.npuir")], str(p))
    assert not (tmp_path / "o.npuir").exists()


def test_truncated_model(tmp_path, capsys):
    data = zoo.build("resnet-tiny").SerializeToString()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    assert_refused(capsys, ["convert", str(p), "-o", str(tmp_path / "o.npuir")], str(p))


def test_folder(tmp_path, capsys):
    assert_refused(capsys, ["convert", str(tmp_path), "-o", str(tmp_path / "o.npuir")],
                   "folder")


def test_missing_path(tmp_path, capsys):
    assert_refused(capsys, ["convert", str(tmp_path / "nope.onnx"), "-o", "x.npuir"],
                   "nope.onnx", "no such file")


def test_cycle(tmp_path, capsys):
    nodes = [helper.make_node("Relu", ["b"], ["a"], name="first"),
             helper.make_node("Add", ["a", "x"], ["b"], name="second"),
             helper.make_node("Relu", ["b"], ["y"], name="third")]
    p = save(tmp_path, model_with(nodes, [vi("x", [2])], [vi("y", [2])]))
    assert_refused(capsys, ["convert", p, "-o", str(tmp_path / "o.npuir")], "cycle", "first")


def test_shapes_that_cannot_broadcast(tmp_path, capsys):
    b = numpy_helper.from_array(np.ones(3, np.float32), "b")
    nodes = [helper.make_node("Add", ["x", "b"], ["y"], name="the_add")]
    p = save(tmp_path, model_with(nodes, [vi("x", [2, 4])], [vi("y", [2, 4])], [b]))
    assert_refused(capsys, ["convert", p, "-o", str(tmp_path / "o.npuir")], "the_add",
                   "Incompatible dimensions")


def test_attribute_out_of_range(tmp_path, capsys):
    nodes = [helper.make_node("Softmax", ["x"], ["y"], axis=7, name="sm")]
    p = save(tmp_path, model_with(nodes, [vi("x", [2, 4])], [vi("y", [2, 4])]))
    assert_refused(capsys, ["convert", p, "-o", str(tmp_path / "o.npuir")], "sm", "axis")


def test_unknown_operator(tmp_path, capsys):
    nodes = [helper.make_node("FancyOp", ["x"], ["y"], name="n7", domain="com.vendor")]
    p = save(tmp_path, model_with(nodes, [vi("x", [2])], [vi("y", [2])],
                                  domains=["com.vendor"]))
    assert_refused(capsys, ["convert", p, "-o", str(tmp_path / "o.npuir")], "FancyOp", "n7",
                   "com.vendor")


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_outside_the_folder(tmp_path, capsys, location):
    folder = tmp_path / "model"
    folder.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.zeros(16, np.float32).tobytes())
    w = numpy_helper.from_array(np.zeros((4, 4), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    m = model_with(nodes, [vi("x", [1, 4])], [vi("y", [1, 4])], [w])
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    p = save(folder, m)
    before = secret.stat().st_atime_ns
    assert_refused(capsys, ["convert", p, "-o", str(tmp_path / "o.npuir")], "outside")
    assert secret.stat().st_atime_ns == before


def test_text_ir_syntax_error(tmp_path, capsys):
    p = tmp_path / "bad.npuir"
    p.write_text("npuir 1\ngraph g(%x: f32[1]) {\n  %y = Relu(%x) f32[1]\n  return %y\n}\n")
    line = assert_refused(capsys, ["convert", str(p), "-o", str(tmp_path / "o.onnx")],
                          f"{p}:3:")
    assert "unexpected" in line


def test_unwritable_output_folder(tmp_path, capsys):
    assert_refused(capsys, ["convert", "zoo:resnet-tiny", "-o",
                            str(tmp_path / "no" / "such" / "o.onnx")], "does not exist")


def test_unknown_zoo_model(capsys):
    assert_refused(capsys, ["convert", "zoo:resnet51", "-o", "x.onnx"], "resnet51")


def test_verbose_shows_the_traceback(tmp_path, capsys):
    code, _, err = run_cli(capsys, "-v", "convert", str(tmp_path / "no.onnx"), "-o", "x.onnx")
    assert code == 2 and "Traceback" in err and err.strip().endswith("no such file")


def test_real_process_exit_code_and_no_traceback(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "npuc", "convert", str(p), "-o",
                        str(tmp_path / "o.onnx")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == f"npuc: error: {p}: the file is empty"


@pytest.mark.parametrize("code", ["ENOSPC", "EDQUOT"])
def test_a_full_disk_is_a_one_line_error_not_a_bug(monkeypatch, capsys, code):
    import errno

    import npuc.compiler.cli as cli

    def full(_args):  # wherever the command's writing fails: a temporary, a cache
        raise OSError(getattr(errno, code), "No space left on device", "/tmp/npuc-x/blob")

    monkeypatch.setattr(cli, "_apply_limits", full)
    assert main(["run", "model.onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" not in err
    assert "no space left on device writing /tmp/npuc-x/blob" in err


def test_another_os_error_stays_an_internal_error(monkeypatch, capsys):
    import errno

    import npuc.compiler.cli as cli

    def broken(_args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cli, "_apply_limits", broken)
    assert main(["run", "model.onnx"]) == 3
    assert "internal error: OSError" in capsys.readouterr().err

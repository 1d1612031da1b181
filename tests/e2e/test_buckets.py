"""Several shape sets compile into one folder: a program each, one weight blob, a manifest."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from npuc.compiler.cli import main
from npuc.compiler.driver import verify
from npuc.compiler.executor.artifact import simulate_folder
from npuc.compiler.lower.blob import digest as blob_digest
from npuc.ir.errors import InputError


@pytest.fixture
def seq_model(tmp_path):
    """x[batch, seq, 16] @ w -> Relu, then a Reshape whose target comes from Shape(x)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Relu", ["m"], ["r"]),
             helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "zero", "two"], ["bs"]),
             helper.make_node("Concat", ["bs", "m1"], ["t"], axis=0),
             helper.make_node("Reshape", ["r", "t"], ["y"])]
    inits = [w, numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([2], np.int64), "two"),
             numpy_helper.from_array(np.array([-1], np.int64), "m1")]
    g = helper.make_graph(nodes, "seq", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["batch", "seq", 16])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["batch", "seq", 16])], inits)
    path = tmp_path / "seq.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _x(seq):
    return np.random.default_rng(seq).standard_normal((1, seq, 16)).astype(np.float32)


def test_one_folder_one_blob_a_program_per_shape_set(seq_model, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["compile", str(seq_model), "-t", "rngd", "--shape", "seq=8,32", "-o", str(out)]
    assert main(argv) == 0, capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["shapes"] for p in manifest["programs"]] == ["seq=8", "seq=32"]
    assert [p["inputs"]["x"] for p in manifest["programs"]] == [[1, 8, 16], [1, 32, 16]]
    blob = (out / "weights.bin").read_bytes()
    assert manifest["weights_sha256"] == blob_digest(blob)
    for p in manifest["programs"]:
        program = json.loads((out / p["program"]).read_text())
        assert program["weights_sha256"] == manifest["weights_sha256"]
    # the weight w is stored once for both programs
    names = [b["name"] for p in manifest["programs"] for b in
             json.loads((out / p["program"]).read_text())["memory"]["buffers"]
             if b["space"] == "weights" and b["name"].startswith("w")]
    offsets = {b["offset"] for p in manifest["programs"] for b in
               json.loads((out / p["program"]).read_text())["memory"]["buffers"]
               if b["space"] == "weights" and b["name"].startswith("w")}
    assert len(names) == 2 and len(offsets) == 1
    session = ort.InferenceSession(str(seq_model), providers=["CPUExecutionProvider"])
    for seq in (8, 32):
        got = simulate_folder(str(out), {"x": _x(seq)})["y"]
        want = session.run(None, {"x": _x(seq)})[0]
        assert got.shape == want.shape
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.999
    with pytest.raises(InputError, match="no program was compiled for inputs"):
        simulate_folder(str(out), {"x": _x(16)})
    # the same inputs give the same bytes
    again = tmp_path / "again"
    assert main(argv[:-1] + [str(again)]) == 0
    for f in out.iterdir():
        assert (again / f.name).read_bytes() == f.read_bytes(), f.name
    assert main(["explain", str(out)]) == 0
    assert "== program for seq=32" in capsys.readouterr().out


def test_verify_runs_the_inputs_on_the_program_for_their_shape(seq_model):
    r = verify(str(seq_model), "rngd", shapes=["seq=8,32"], inputs={"x": _x(32)})
    assert r.passed and any("program 1 (seq=32)" in n for n in r.notes), r.notes
    r = verify(str(seq_model), "warboy", shapes=["seq=8,32"])
    assert r.passed and set(r.outputs) == {"y [seq=8]", "y [seq=32]"}


def test_a_schedule_file_with_several_shape_sets_is_refused(seq_model, tmp_path, capsys):
    code = main(["compile", str(seq_model), "-t", "rngd", "--shape", "seq=8,32", "-o",
                 str(tmp_path / "o"), "--schedule-out", str(tmp_path / "s.json")])
    assert code == 2 and "one shape set" in capsys.readouterr().err

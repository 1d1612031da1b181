"""Symbolic dimensions get their values from --shape, the inputs given or the batch; never 1."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from npuc.compiler.cli import main
from npuc.compiler.schedule.prepare import load_static
from npuc.compiler.schedule.shapes import ShapeSet, parse_shapes, resolve
from npuc.ir.errors import NpucError


def _model(shape, path=None):
    """x[shape] -> Relu -> ReduceMean over the last two axes (keeps the rank)."""
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("ReduceMean", ["r"], ["y"], axes=[2, 3], keepdims=1)], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 3, 1, 1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    if path is not None:
        onnx.save(m, str(path))
    return m


def _shape(graph):
    return graph.inputs[0].type.shape


def test_parse_gives_one_set_per_combination():
    sets = parse_shapes(["seq=128,512", "x=1x3x8x8"])
    assert [s.label() for s in sets] == ["seq=128,x=1x3x8x8", "seq=512,x=1x3x8x8"]
    assert parse_shapes(None) == [ShapeSet()]


@pytest.mark.parametrize("spec", ["x", "x=", "=3", "x=1xax3", "x=-1"])
def test_parse_refuses_what_is_not_a_shape(spec):
    with pytest.raises(NpucError, match="--shape"):
        parse_shapes([spec])


def test_an_unset_dimension_is_refused_with_the_fix():
    with pytest.raises(NpucError) as e:
        load_static(_model(["N", 3, "H", "W"]))
    msg = str(e.value)
    for words in ("axis 2 ('H')", "axis 3 ('W')", "--shape x=1x3x<2>x<3>", "--shape H="):
        assert words in msg, msg


def test_named_dimensions_and_whole_shapes_are_set():
    g, _ = load_static(_model(["N", 3, "H", "W"]), batch=2,
                       shapes=parse_shapes(["H=5", "W=7"])[0])
    assert _shape(g) == (2, 3, 5, 7)
    g, _ = load_static(_model([-1, 3, "?", "?"]), shapes=parse_shapes(["x=1x3x48x192"])[0])
    assert _shape(g) == (1, 3, 48, 192)
    assert g.outputs[0].type.shape == (1, 3, 1, 1)


def test_inputs_given_set_the_shapes_and_must_agree():
    g, _ = load_static(_model(["N", 3, "H", "W"]), given={"x": (1, 3, 4, 6)})
    assert _shape(g) == (1, 3, 4, 6)
    with pytest.raises(NpucError, match="axis 1 is 3"):
        load_static(_model(["N", 3, "H", "W"]), given={"x": (1, 4, 4, 6)})
    with pytest.raises(NpucError, match="no input or named dimension 'Q'"):
        load_static(_model(["N", 3, "H", "W"]), shapes=parse_shapes(["Q=3"])[0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", None, 4]), min_size=1, max_size=4),
       st.integers(1, 9), st.integers(1, 9), st.integers(1, 9))
def test_every_dimension_gets_a_value_or_is_named_in_the_error(dims, a, b, batch):
    """Resolution either fixes every axis consistently or names each axis left open."""
    sig = [("x", dims), ("y", list(reversed(dims)))]
    try:
        out, _ = resolve(sig, parse_shapes([f"a={a}"])[0] if "a" in dims else None, batch)
    except NpucError as e:
        assert "without a value" in str(e)
        return
    values = {}
    for name, d in sig:
        for axis, sym in enumerate(d):
            got = out[name][axis]
            assert isinstance(got, int) and got >= 0
            if isinstance(sym, int):
                assert got == sym
            elif sym is not None:
                assert values.setdefault(sym, got) == got


@pytest.mark.parametrize("command", ["compile", "verify", "explain"])
def test_cli_refuses_an_unset_dimension_with_exit_2(tmp_path, capsys, command):
    path = tmp_path / "m.onnx"
    _model(["N", 3, "H", "W"], path)
    argv = [command, str(path), "-t", "warboy"]
    code = main(argv + (["-o", str(tmp_path / "out")] if command == "compile" else []))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    # the file the user gave starts the line (not the graph's name), then the fix
    assert err.startswith(f"npuc: error: {path}: 2 symbolic dimensions without a value "
                          "(input 'x' axis 2 ('H'); input 'x' axis 3 ('W'))"), err
    assert "--shape x=1x3x<2>x<3>" in err and "--shape H=<size>" in err


def test_cli_compiles_with_shape(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    _model([-1, 3, "?", "?"], path)
    code = main(["verify", str(path), "-t", "rngd", "--shape", "x=1x3x8x12"])
    assert code == 0, capsys.readouterr()


def test_run_accepts_any_consistent_shape_for_open_dimensions(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    _model([-1, 3, "?", "?"], path)
    x = np.random.default_rng(0).standard_normal((1, 3, 48, 192)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    code = main(["run", str(path), "--inputs", str(tmp_path / "in.npz"),
                 "-o", str(tmp_path / "out.npz")])
    assert code == 0, capsys.readouterr()
    want = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"], want, rtol=1e-5, atol=1e-6)


def test_open_dimensions_import_as_open_and_generate_inputs():
    from npuc.compiler.executor.inputs import random_inputs
    from npuc.compiler.frontend.onnx_import import import_onnx

    g = import_onnx(_model([-1, 3, "?", "?"]))
    assert _shape(g) == (None, 3, None, None)
    assert random_inputs(g)["x"].shape == (1, 3, 1, 1)


def test_quantize_takes_shape(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    _model(["N", 3, "H", "W"], path)
    out = tmp_path / "q.npuir"
    code = main(["quantize", str(path), "-t", "warboy", "--calibration", "random:2",
                 "--shape", "x=1x3x4x6", "-o", str(out)])
    assert code == 0, capsys.readouterr()
    assert "f32[1,3,4,6]" in out.read_text() or "[1,3,4,6]" in out.read_text()

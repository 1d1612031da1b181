"""The text format: print(parse(text)) == text, errors with line and column."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from npuc.ir.errors import ParseError
from npuc.ir.parser import load_text, parse_text, save_text
from npuc.ir.printer import print_graph
from npuc.ir.verifier import verify
from tests.strategies import any_dtype_constants, graphs

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])


@SETTINGS
@given(graphs())
def test_print_parse_print_is_identity(g):
    text = print_graph(g)
    again = parse_text(text)
    verify(again, check_schemas=False)
    assert print_graph(again) == text


@SETTINGS
@given(any_dtype_constants())
def test_constants_of_every_dtype_round_trip_exactly(g):
    text = print_graph(g)
    again = parse_text(text)
    assert print_graph(again) == text
    for name, v in g.constants.items():
        got = again.constants[name].const
        assert got.dtype == v.const.dtype and got.shape == v.const.shape
        assert got.tobytes() == v.const.tobytes()


@SETTINGS
@given(graphs())
def test_side_file_round_trip(g):
    blob = bytearray()
    text = print_graph(g, blob, "m.bin", inline_limit=2)
    again = parse_text(text, blob=bytes(blob))
    blob2 = bytearray()
    assert print_graph(again, blob2, "m.bin", inline_limit=2) == text
    assert blob2 == blob


def test_save_and_load_keep_large_constants_beside_the_text(tmp_path):
    g = parse_text(EXAMPLE)
    big = g.add_constant("big", np.arange(1000, dtype=np.float32))
    n = g.create_node("Add", [g.inputs[0], big], [("z", None)])
    g.outputs.append(n.outputs[0])
    path = tmp_path / "m.npuir"
    save_text(g, str(path))
    assert (tmp_path / "m.npuir.bin").stat().st_size == 4000
    assert "blob(0, 4000)" in path.read_text()
    again = load_text(str(path))
    assert np.array_equal(again.constants["big"].const, big.const)
    save_text(again, str(tmp_path / "m2.npuir"))
    assert (tmp_path / "m2.npuir").read_text().replace("m2.npuir", "m.npuir") == \
        path.read_text()


EXAMPLE = """npuir 1
opset ai.onnx=17
graph main(%x: f32[N,4]) {
  const %w: f32[4] = [1.0, 2.0, 0.5, -0.25]
  %y = Mul(%x, %w) : f32[N,4] @"/layer/Mul"
  return %y
}
"""


def test_example_parses_and_prints_identically():
    assert print_graph(parse_text(EXAMPLE)) == EXAMPLE


@pytest.mark.parametrize("text, where, words", [
    ("npuir 1\ngraph g(%x: f32[1]) {\n  %y = Relu(%q) : f32[1]\n  return %y\n}\n",
     "3:13", "undefined value %q"),
    ("npuir 1\ngraph g(%x: f32[1]) {\n  %y = Relu(%x) : f32[1\n  return %y\n}\n",
     "4:3", "unexpected"),
    ("npuir 1\ngraph g(%x: f32[1]) {\n  %y = Relu(%x) : q32[1]\n  return %y\n}\n",
     "3:19", "unknown element type 'q32'"),
    ("npuir 1\ngraph g(%x: f32[1]) {\n  %x = Relu(%x) : f32[1]\n  return %x\n}\n",
     ":3:", "defined twice"),
    ("npuir 9\ngraph g() {\n  return\n}\n", ":1:", "version 9"),
    ("npuir 1\ngraph g() {\n  const %c: f32[3] = [1.0]\n  return %c\n}\n", ":3:", "3"),
    ("npuir 1\ngraph g(%x: f32[1]) {\n  %y = Relu(%x) : f32[1] $\n", "3:26", "character"),
    ("", "1:1", "end of file"),
])
def test_syntax_errors_name_line_and_column(text, where, words):
    with pytest.raises(ParseError) as e:
        parse_text(text, where="t.npuir")
    msg = str(e.value)
    assert msg.startswith("t.npuir:") and where in msg and words in msg
    assert "\n" not in msg


def test_side_file_outside_the_folder_is_refused(tmp_path):
    (tmp_path / "m.npuir").write_text('npuir 1 blobs "../x.bin"\ngraph g() {\n  return\n}\n')
    with pytest.raises(ParseError, match="same folder"):
        load_text(str(tmp_path / "m.npuir"))

"""A trained model shipped in a PyPI wheel compiles as shipped, given its input's shape.

The text direction classifier of PaddleOCR (exported by paddle2onnx, input
f32[-1, 3, ?, ?]) is kept in tests/data/trained with its license noted there.
"""

import os

import numpy as np
import pytest

from npuc.compiler.cli import main
from npuc.compiler.driver import verify

MODEL = os.path.join(os.path.dirname(__file__), "..", "data", "trained",
                     "ppocr_mobile_v2_cls.onnx")


def text_line() -> np.ndarray:
    """A dark text-like stroke pattern on a light line, normalized as PaddleOCR does."""
    img = np.full((48, 192), 240.0, np.float32)
    rng = np.random.default_rng(0)
    for x0 in range(6, 180, 14):  # glyph-like blocks of strokes
        h = int(rng.integers(14, 30))
        img[24 - h // 2:24 + h // 2, x0:x0 + 3] = 20.0
        img[24 - h // 2:24 - h // 2 + 3, x0:x0 + 9] = 20.0
    x = (np.repeat(img[None, None], 3, axis=1) / 255.0 - 0.5) / 0.5
    return x.astype(np.float32)


@pytest.mark.parametrize("target", ["warboy-2pe", "rngd"])
def test_the_classifier_compiles_and_verifies(target):
    r = verify(MODEL, target, inputs={"x": text_line()})
    for m in r.outputs.values():
        assert m["program_vs_ir_sqnr_db"] >= 60.0
    assert r.passed, r.outputs


def test_the_classifier_without_a_shape_is_refused_with_the_fix(capsys, tmp_path):
    code = main(["compile", MODEL, "-t", "rngd", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert "input 'x' axis 2 (anonymous)" in err and "--shape x=1x3x<2>x<3>" in err

"""Imports every pass module once, so that each registers its passes."""

from . import (  # noqa: F401
    canonicalize,
    cse,
    dce,
    decompose,
    fold_constants,
    shape_inference,
)

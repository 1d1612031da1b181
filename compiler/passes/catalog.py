"""Imports every pass module once, so that each registers its passes."""

from . import (  # noqa: F401
    attention,
    canonicalize,
    contrib_expand,
    cse,
    dce,
    decompose,
    fold_constants,
    fuse_bn,
    fuse_epilogue,
    fuse_pad,
    gelu,
    layernorm,
    shape_inference,
    transposes,
)

"""Activation epilogues applied with the ONNX kernels: what npuc's fused operators
(:mod:`npuc.compiler.ops.fused`) and onnxruntime's FusedConv run after their product."""

from __future__ import annotations

import dataclasses

import numpy as np

from . import get_kernel


def activate(y: np.ndarray, name: str, params, ctx, fresh: bool = False) -> np.ndarray:
    """Apply an epilogue activation with the ONNX kernels; ``fresh``: ``y`` is the product
    just computed, which nobody else holds, so the activation may overwrite it."""
    if not name:
        return y
    ctx = dataclasses.replace(ctx, donated=(0,) if fresh else ())
    params = list(params)
    if name == "Clip":
        lo, hi = (np.asarray(p, dtype=y.dtype) for p in params)
        return get_kernel("Clip")([y, lo, hi], {}, ctx)[0]
    if name in ("Gelu", "GeluTanh"):
        approx = "tanh" if name == "GeluTanh" else "none"
        return get_kernel("Gelu")([y], {"approximate": approx}, ctx)[0]
    attrs = {}
    if name in ("LeakyRelu", "Elu"):
        attrs["alpha"] = params[0]
    elif name == "HardSigmoid":
        attrs["alpha"], attrs["beta"] = params
    return get_kernel(name)([y], attrs, ctx)[0]

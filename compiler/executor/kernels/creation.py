"""Operators that make a tensor from attributes, scalars or a shape: Constant,
ConstantOfShape, Range, EyeLike, and AffineGrid (a sampling grid from affine matrices)."""

from __future__ import annotations

import numpy as np

from npuc.ir.errors import NpucError, UnsupportedError
from npuc.ir.limits import check_shape

from .cast import _numpy_dtype
from .checks import checked_kernel


@checked_kernel("Constant")
def constant(inputs, attrs, ctx):
    """ONNX Constant, from whichever ``value*`` attribute is set."""
    if "value" in attrs:
        return [np.asarray(attrs["value"])]
    for name, dt in (("value_float", np.float32), ("value_floats", np.float32),
                     ("value_int", np.int64), ("value_ints", np.int64)):
        if name in attrs:
            return [np.array(attrs[name], dtype=dt)]
    if "value_string" in attrs:
        return [np.array(attrs["value_string"], dtype=object)]
    if "value_strings" in attrs:
        return [np.array(list(attrs["value_strings"]), dtype=object)]
    if "sparse_value" in attrs:
        raise UnsupportedError(f"{ctx.describe()}: sparse_value is not supported")
    raise NpucError(f"{ctx.describe()}: Constant has no value attribute")


@checked_kernel("ConstantOfShape")
def constant_of_shape(inputs, attrs, ctx):
    """ONNX ConstantOfShape (float32 zeros unless ``value`` says otherwise)."""
    shape = [int(d) for d in np.asarray(inputs[0]).reshape(-1)]
    if any(d < 0 for d in shape):
        raise NpucError(f"{ctx.describe()}: negative dimension in shape {shape}")
    value = attrs.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    check_shape(shape, value.dtype.itemsize, ctx.describe())
    return [np.full(shape, value[0], dtype=value.dtype)]


@checked_kernel("Range")
def range_(inputs, attrs, ctx):
    """ONNX Range: ``max(ceil((limit - start) / delta), 0)`` elements."""
    start, limit, delta = (np.asarray(v).reshape(()) for v in inputs)
    if delta == 0:
        raise NpucError(f"{ctx.describe()}: delta cannot be 0")
    dt = start.dtype
    if dt.kind in "iu":
        s, l_, d = int(start), int(limit), int(delta)
        n = max(-((s - l_) // d), 0)  # ceil division in exact integers
        check_shape([n], dt.itemsize, ctx.describe())
        return [(s + np.arange(n, dtype=np.int64) * d).astype(dt)]
    span = (float(limit) - float(start)) / float(delta)
    if not np.isfinite(span):
        raise NpucError(f"{ctx.describe()}: Range from {start} to {limit} by {delta} has no "
                        "finite length")
    n = max(int(np.ceil(span)), 0)
    check_shape([n], dt.itemsize, ctx.describe())
    return [(start + np.arange(n).astype(dt) * delta).astype(dt)]


@checked_kernel("EyeLike")
def eye_like(inputs, attrs, ctx):
    """ONNX EyeLike, with diagonal offset ``k`` and optional output ``dtype``."""
    x = inputs[0]
    if x.ndim != 2:
        raise NpucError(f"{ctx.describe()}: needs a 2-D input, got rank {x.ndim}")
    dt = _numpy_dtype(attrs["dtype"], ctx) if "dtype" in attrs else x.dtype
    return [np.eye(x.shape[0], x.shape[1], k=attrs.get("k", 0)).astype(dt)]


@checked_kernel("AffineGrid")
def affine_grid(inputs, attrs, ctx):
    """ONNX AffineGrid: sampling coordinates in [-1, 1] for 2-D and 3-D affine transforms."""
    theta, size = inputs
    size = [int(s) for s in size.reshape(-1)]
    align = attrs.get("align_corners", 0)
    spatial = size[2:]
    if len(spatial) not in (2, 3):
        raise NpucError(f"{ctx.describe()}: size must have 4 or 5 entries, got {len(size)}")

    def coords(n):
        if align:
            return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(n)
        return (np.arange(n) * 2.0 + 1.0) / n - 1.0

    # Coordinates are (x, y[, z]), x running along the last axis.
    axes = [coords(n) for n in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")
    base = np.stack(list(reversed(mesh)) + [np.ones(spatial)], axis=-1)
    base = base.reshape(-1, len(spatial) + 1)
    wide = theta.astype(np.float64)
    grid = np.einsum("pk,njk->npj", base, wide)
    return [grid.reshape([size[0]] + spatial + [len(spatial)]).astype(theta.dtype)]

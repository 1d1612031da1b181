"""Casts, constants and small operators that fit nowhere else.

Also here: the block rearrangements DepthToSpace/SpaceToDepth and CenterCropPad.

Cast covers every pair of element types npuc knows, through ml_dtypes for bfloat16, the
float8 family and the 4-bit types. With ``saturate`` (the default) a float8 target clamps
out-of-range values, infinities included, to its largest finite value; without it they
become NaN or infinity as the format allows. Integer targets wrap, like a C cast of an
in-range value and numpy's ``astype`` of the others.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from npuc.ir.dtypes import dtype as npuc_dtype
from npuc.ir.errors import NpucError, UnsupportedError
from npuc.ir.limits import check_shape

from .checks import checked_kernel, normalize_axes

_FLOAT8 = {np.dtype(t) for t in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz,
                                  ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz)}


# Element types a model may cast to that npuc's IR does not carry as tensor types.
_EXTRA_TYPES = {24: np.dtype(ml_dtypes.float8_e8m0fnu), 25: np.dtype(ml_dtypes.uint2),
                26: np.dtype(ml_dtypes.int2)}
_E8M0 = _EXTRA_TYPES[24]


def _numpy_dtype(onnx_enum: int, ctx) -> np.dtype:
    try:
        return npuc_dtype(int(onnx_enum)).numpy
    except KeyError as e:
        if int(onnx_enum) in _EXTRA_TYPES:
            return _EXTRA_TYPES[int(onnx_enum)]
        raise UnsupportedError(f"{ctx.describe()}: element type {onnx_enum} is not "
                               "supported") from e


def _to_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """float8 e8m0 (a bare power-of-two exponent): keep the float32 exponent and round."""
    bits = x.astype(np.float32).view(np.uint32)
    exp = ((bits >> 23) & 0xFF).astype(np.uint16)
    special = exp == 0xFF
    if round_mode == "up":
        up = (bits & 0x7FFFFF) > 0
    elif round_mode == "nearest":
        guard = (bits & 0x400000) > 0
        up = guard & (((bits & 0x1FFFFF) > 0) | (exp > 0))
    else:  # "down"
        up = np.zeros(bits.shape, dtype=bool)
    up &= ~special
    if saturate:
        up &= exp != 0xFE
    exp = exp + up.astype(np.uint16)
    return np.where(special, 0xFF, exp).astype(np.uint8).view(_E8M0)


def cast_array(x: np.ndarray, to: np.dtype, saturate: bool = True,
               round_mode: str = "up") -> np.ndarray:
    """``x`` converted to ``to`` with the ONNX Cast rules."""
    if to == _E8M0 and x.dtype != _E8M0:
        return _to_e8m0(cast_array(x, np.dtype(np.float32)), saturate, round_mode)
    if to == object:
        if x.dtype == object:
            return x
        if x.dtype.kind == "V":
            x = x.astype(np.float32)
        return x.astype(np.str_).astype(object)
    if x.dtype == object:
        x = x.astype(np.str_)
        if to.kind in "iu":
            return x.astype(np.float64).astype(to)
        if to.kind == "V":
            return x.astype(np.float32).astype(to)
        return x.astype(to)
    if to in _FLOAT8 and saturate and x.dtype.kind in "fiuV":
        info = ml_dtypes.finfo(to)
        wide = x.astype(np.float32)
        with np.errstate(invalid="ignore"):
            return np.clip(wide, float(info.min), float(info.max)).astype(to)
    with np.errstate(all="ignore"):
        if x.dtype.kind == "V" and to.kind in "iub" and "float" in x.dtype.name:
            x = x.astype(np.float32)
        return x.astype(to)


@checked_kernel("Cast")
def cast(inputs, attrs, ctx):
    """ONNX Cast to the type ``to`` (with ``saturate`` for float8 targets)."""
    to = _numpy_dtype(attrs["to"], ctx)
    return [cast_array(inputs[0], to, bool(attrs.get("saturate", 1)),
                       attrs.get("round_mode", "up"))]


@checked_kernel("CastLike")
def cast_like(inputs, attrs, ctx):
    """ONNX CastLike: cast to the type of the second input."""
    return [cast_array(inputs[0], inputs[1].dtype, bool(attrs.get("saturate", 1)),
                       attrs.get("round_mode", "up"))]


@checked_kernel("Identity")
def identity(inputs, attrs, ctx):
    """ONNX Identity (tensors, sequences and optionals alike)."""
    return [inputs[0]]


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


@checked_kernel("Det")
def det(inputs, attrs, ctx):
    """ONNX Det over the last two axes."""
    x = inputs[0]
    wide = x.astype(np.float64) if x.dtype != np.float64 else x
    return [np.asarray(np.linalg.det(wide)).astype(x.dtype)]


@checked_kernel("Unique")
def unique(inputs, attrs, ctx):
    """ONNX Unique: values, first indices, inverse indices and counts.

    With ``sorted=0`` the values come in order of first occurrence.
    """
    x = inputs[0]
    axis = attrs.get("axis")
    if axis is not None:
        axis = axis + x.ndim if axis < 0 else axis
    src = x.reshape(-1) if axis is None else x
    y, first, inverse, counts = np.unique(src, return_index=True, return_inverse=True,
                                          return_counts=True, axis=axis)
    inverse = inverse.reshape(-1)
    if not attrs.get("sorted", 1):
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        y = np.take(y, order, axis=0 if axis is None else axis)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    return [y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)][
        : max(ctx.num_outputs, 1)]


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


@checked_kernel("BitCast")
def bit_cast(inputs, attrs, ctx):
    """ONNX BitCast: the same bits read as another type of the same width."""
    x = inputs[0]
    to = _numpy_dtype(attrs["to"], ctx)
    if to == object or x.dtype == object or to.itemsize != x.dtype.itemsize:
        raise NpucError(f"{ctx.describe()}: cannot bit-cast {x.dtype} to {to}")
    return [(x if x.flags.c_contiguous else x.copy()).view(to)]


@checked_kernel("DepthToSpace")
def depth_to_space(inputs, attrs, ctx):
    """ONNX DepthToSpace (DCR or CRD ordering)."""
    x = inputs[0]
    b = attrs["blocksize"]
    n, c, h, w = x.shape
    if c % (b * b):
        raise NpucError(f"{ctx.describe()}: {c} channels do not divide by blocksize² {b * b}")
    if attrs.get("mode", "DCR") == "DCR":
        t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [t.reshape(n, c // (b * b), h * b, w * b)]


@checked_kernel("SpaceToDepth")
def space_to_depth(inputs, attrs, ctx):
    """ONNX SpaceToDepth (DCR, or CRD from opset 28)."""
    x = inputs[0]
    b = attrs["blocksize"]
    n, c, h, w = x.shape
    if h % b or w % b:
        raise NpucError(f"{ctx.describe()}: spatial size {h}x{w} does not divide by {b}")
    t = x.reshape(n, c, h // b, b, w // b, b)
    if attrs.get("mode", "DCR") == "DCR":
        t = t.transpose(0, 3, 5, 1, 2, 4)
    else:
        t = t.transpose(0, 1, 3, 5, 2, 4)
    return [t.reshape(n, c * b * b, h // b, w // b)]


@checked_kernel("CenterCropPad")
def center_crop_pad(inputs, attrs, ctx):
    """ONNX CenterCropPad: crop or zero-pad each axis around its centre."""
    x, shape = inputs
    shape = [int(s) for s in shape.reshape(-1)]
    axes = normalize_axes(attrs.get("axes", range(x.ndim)), x.ndim, ctx)
    if len(axes) != len(shape):
        raise NpucError(f"{ctx.describe()}: {len(shape)} sizes for {len(axes)} axes")
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    out_shape = list(x.shape)
    for a, s in zip(axes, shape):
        d = x.shape[a]
        out_shape[a] = s
        if s < d:
            off = (d - s) // 2
            src[a] = slice(off, off + s)
        elif s > d:
            off = (s - d) // 2
            dst[a] = slice(off, off + d)
    out = np.zeros(out_shape, dtype=x.dtype)
    out[tuple(dst)] = x[tuple(src)]
    return [out]

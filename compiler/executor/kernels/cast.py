"""Casts: Cast, CastLike, BitCast, and Identity (a value as itself).

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

from .checks import checked_kernel

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


@checked_kernel("BitCast")
def bit_cast(inputs, attrs, ctx):
    """ONNX BitCast: the same bits read as another type of the same width."""
    x = inputs[0]
    to = _numpy_dtype(attrs["to"], ctx)
    if to == object or x.dtype == object or to.itemsize != x.dtype.itemsize:
        raise NpucError(f"{ctx.describe()}: cannot bit-cast {x.dtype} to {to}")
    return [(x if x.flags.c_contiguous else x.copy()).view(to)]

"""Quantisation: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, and the exact
integer convolutions ConvInteger and QLinearConv.

Scales are per tensor (a scalar), per axis (1-D along ``axis``) or blocked (same rank as
the input, ``block_size`` consecutive elements along ``axis`` share one scale). Integer
results round half to even and saturate; the float8 and int4 types come from ml_dtypes.
Integer convolutions gather int32 columns (im2col) and accumulate them in int32 in a
Numba loop, never through float.
"""

from __future__ import annotations

import ml_dtypes
import numba as nb
import numpy as np
from onnx import helper

from . import kernel
from .checks import accepts, unsupported
from .windows import conv_geometry, conv_out_shape, im2col

FLOAT8 = {np.dtype(t) for t in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz,
                                ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz)}
if hasattr(ml_dtypes, "float4_e2m1fn"):
    FLOAT8.add(np.dtype(ml_dtypes.float4_e2m1fn))
INTEGER = {np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32,
                                 ml_dtypes.int4, ml_dtypes.uint4)}
if hasattr(ml_dtypes, "int2"):
    INTEGER |= {np.dtype(ml_dtypes.int2), np.dtype(ml_dtypes.uint2)}


def expand_scale(scale, x_shape, axis, block_size):
    """Broadcast a per-tensor, per-axis or blocked scale (or zero point) to ``x_shape``."""
    scale = np.asarray(scale)
    if scale.ndim == 0 or scale.size == 1 and len(x_shape) == 0:
        return scale.reshape(())
    axis = axis % len(x_shape)
    if block_size:
        return np.repeat(scale, block_size, axis=axis).take(range(x_shape[axis]), axis=axis)
    if scale.ndim == 1:
        shape = [1] * len(x_shape)
        shape[axis] = scale.shape[0]
        return scale.reshape(shape)
    return scale


def quantize(x, scale, zero_point, out_dtype, saturate=True):
    """saturate(round_half_even(x / scale) + zero_point) in ``out_dtype``."""
    work = np.float32 if np.dtype(scale.dtype).itemsize <= 4 and x.dtype != np.float64 else np.float64
    q = x.astype(work) / scale.astype(work)
    out_dtype = np.dtype(out_dtype)
    if out_dtype in FLOAT8:
        if zero_point is not None:
            q = q + zero_point.astype(work)
        if saturate:
            fmax = float(ml_dtypes.finfo(out_dtype).max)
            q = np.clip(q, -fmax, fmax)
        return q.astype(out_dtype)
    q = np.rint(q)
    if zero_point is not None:
        q = q + zero_point.astype(work)
    info = ml_dtypes.iinfo(out_dtype) if out_dtype.kind == "V" else np.iinfo(out_dtype)
    return np.clip(q, info.min, info.max).astype(out_dtype)


def _out_dtype(attrs, zero_point, ctx):
    if zero_point is not None:
        return zero_point.dtype
    code = attrs.get("output_dtype", 0)
    if code:
        return np.dtype(helper.tensor_dtype_to_np_dtype(code))
    return np.dtype(np.uint8)


@kernel("QuantizeLinear")
def quantize_linear(inputs, attrs, ctx):
    x, scale = inputs[0], inputs[1]
    zp = inputs[2] if len(inputs) > 2 else None
    out_dtype = _out_dtype(attrs, zp, ctx)
    if out_dtype not in FLOAT8 and out_dtype not in INTEGER:
        raise unsupported(ctx, f"quantizing to {out_dtype}")
    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
    s = expand_scale(scale, x.shape, axis, block)
    z = expand_scale(zp, x.shape, axis, block) if zp is not None else None
    if z is not None and out_dtype in FLOAT8:
        z = z.astype(np.float32)
    elif z is not None:
        z = z.astype(np.int64)
    return [quantize(x, s, z, out_dtype, bool(attrs.get("saturate", 1)))]


@kernel("DequantizeLinear")
def dequantize_linear(inputs, attrs, ctx):
    x, scale = inputs[0], inputs[1]
    zp = inputs[2] if len(inputs) > 2 else None
    if x.dtype not in FLOAT8 and x.dtype not in INTEGER:
        raise unsupported(ctx, f"dequantizing {x.dtype}")
    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
    out_dtype = scale.dtype
    if attrs.get("output_dtype", 0):
        out_dtype = np.dtype(helper.tensor_dtype_to_np_dtype(attrs["output_dtype"]))
    work = np.float64 if out_dtype == np.float64 else np.float32
    s = expand_scale(scale, x.shape, axis, block).astype(work)
    if x.dtype in FLOAT8:
        v = x.astype(work)
        if zp is not None:
            v = v - expand_scale(zp, x.shape, axis, block).astype(work)
    else:
        v = x.astype(np.int64)
        if zp is not None:
            v = v - expand_scale(zp, x.shape, axis, block).astype(np.int64)
        v = v.astype(work)
    return [(v * s).astype(out_dtype)]


@kernel("DynamicQuantizeLinear")
def dynamic_quantize_linear(inputs, attrs, ctx):
    x = inputs[0].astype(np.float32)
    lo = min(0.0, float(x.min())) if x.size else 0.0
    hi = max(0.0, float(x.max())) if x.size else 0.0
    scale = np.float32((hi - lo) / 255.0)
    if scale == 0:
        scale = np.float32(1.0)  # all-zero input: any scale represents it exactly
    zp = np.uint8(np.clip(np.rint(np.float32(0 - lo) / scale), 0, 255))
    y = np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.uint8)
    return [y, np.array(scale, dtype=np.float32), np.array(zp, dtype=np.uint8)]


@nb.njit(cache=True)
def int_gemm(a, b, out):
    """out[g] = a[g] @ b[g] for int32 stacks, accumulated exactly in int32."""
    for g in range(a.shape[0]):
        for i in range(a.shape[1]):
            for j in range(b.shape[2]):
                out[g, i, j] = 0
            for k in range(a.shape[2]):
                av = a[g, i, k]
                if av == 0:
                    continue
                for j in range(b.shape[2]):
                    out[g, i, j] += av * b[g, k, j]
    return out


def integer_product(a, b, per: float | None = None) -> np.ndarray:
    """``a @ b`` (numpy broadcasting) of integer-valued arrays whose every partial sum is
    below ``2**53``, as float64 holding the exact integer sums.

    If every product is at most P in size and a block of the K dimension is short enough
    that P * block < 2^24, every partial sum of that block (in whatever order BLAS adds)
    is an integer below 2^24, which float32 represents exactly: each block is one sgemm,
    twice as fast as a dgemm, and the blocks are added in float64, exactly. When the
    blocks would be short, one float64 product (53 bits) does it. ``per``: the largest
    product's size, when the caller has it.
    """
    k = a.shape[-1]
    if per is None:
        per = _largest_product(a, b)
    block = int(2.0**24 // per) if per else k
    if k == 0 or block < min(k, 64):
        return np.matmul(a.astype(np.float64), b.astype(np.float64))
    af, bf = a.astype(np.float32, copy=False), b.astype(np.float32, copy=False)
    acc = None
    for k0 in range(0, k, block):
        part = np.matmul(af[..., k0:k0 + block], bf[..., k0:k0 + block, :])
        acc = part.astype(np.float64) if acc is None else acc + part
    return acc


def _largest_product(a, b) -> float:
    return float(np.abs(a).max()) * float(np.abs(b).max()) if a.size and b.size else 0.0


def exact_int_matmul(a, b, out):
    """out[g] = a[g] @ b[g] for int32 stacks, exactly as int32 accumulation gives.

    BLAS is used whenever it is provably exact (:func:`integer_product`); only when a sum
    could leave the int32 range does the Numba loop run, reproducing int32 wrap-around.
    """
    per = _largest_product(a, b)
    if per * a.shape[-1] >= 2.0**31:
        return int_gemm(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
    out[...] = integer_product(a, b, per)
    return out


def conv_integer(x, w, x_zero, w_zero, strides, pads, dilations, group):
    """Exact integer convolution of (x - x_zero) and (w - w_zero), as int32."""
    n, c = x.shape[:2]
    m = w.shape[0]
    xi = x.astype(np.int32) - np.int32(0 if x_zero is None else np.asarray(x_zero).reshape(-1)[0])
    wi = w.astype(np.int32)
    if w_zero is not None:
        wz = np.asarray(w_zero, dtype=np.int32).reshape(-1)
        wi = wi - (wz.reshape((-1,) + (1,) * (w.ndim - 1)) if wz.size > 1 else wz[0])
    kshape = w.shape[2:]
    oshape = conv_out_shape(x.shape[2:], kshape, strides, pads, dilations)
    # Padding must read as the zero point, i.e. zero after subtracting it.
    cols = im2col(xi, kshape, strides, pads, dilations, oshape, np.int32)
    cols = cols.reshape(n, group, (c // group) * int(np.prod(kshape)), -1)
    wm = np.ascontiguousarray(wi.reshape(group, m // group, -1))
    out = np.empty((n, group, m // group, cols.shape[-1]), dtype=np.int32)
    for i in range(n):
        exact_int_matmul(wm, cols[i], out[i])
    return out.reshape(n, m, *oshape)


@kernel("ConvInteger")
@accepts("int")
def conv_integer_kernel(inputs, attrs, ctx):
    x, w = inputs[0], inputs[1]
    xz = inputs[2] if len(inputs) > 2 else None
    wz = inputs[3] if len(inputs) > 3 else None
    strides, pads, dilations = conv_geometry(x, w, attrs, ctx)
    return [conv_integer(x, w, xz, wz, strides, pads, dilations, attrs.get("group", 1))]


def requantize(acc, scale, zero_point, dtype):
    """round_half_even(acc * scale) + zero_point, saturated to ``dtype``."""
    info = np.iinfo(dtype)
    y = np.rint(acc.astype(np.float64) * scale) + np.asarray(zero_point, dtype=np.float64)
    return np.clip(y, info.min, info.max).astype(dtype)


@kernel("QLinearConv")
@accepts("int")
def qlinear_conv(inputs, attrs, ctx):
    x, xs, xz, w, ws, wz, ys, yz = inputs[:8]
    b = inputs[8] if len(inputs) > 8 else None
    strides, pads, dilations = conv_geometry(x, w, attrs, ctx)
    acc = conv_integer(x, w, xz, wz, strides, pads, dilations, attrs.get("group", 1))
    if b is not None:
        acc = acc + b.astype(np.int32).reshape((1, -1) + (1,) * (x.ndim - 2))
    nd = x.ndim - 2
    scale = (np.float64(np.asarray(xs).reshape(-1)[0]) * np.asarray(ws, np.float64).reshape(-1)
             / np.float64(np.asarray(ys).reshape(-1)[0]))
    scale = scale.reshape((1, -1) + (1,) * nd) if scale.size > 1 else scale[0]
    zp = yz if yz is not None else np.zeros((), x.dtype)
    return [requantize(acc, scale, np.asarray(zp).reshape(-1)[0], (zp.dtype if yz is not None else x.dtype))]

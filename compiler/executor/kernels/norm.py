"""Normalisations and softmax: BatchNormalization, InstanceNormalization,
LayerNormalization, GroupNormalization, RMSNormalization, LpNormalization,
MeanVarianceNormalization, LRN, Softmax, LogSoftmax, Hardmax.

All are a few reductions over contiguous axes, which numpy already does at memory speed;
statistics are computed in float32 (float64 for double inputs), as ``stash_type`` asks.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .. import threads
from . import kernel, vecmath
from .accumulate import wide_mean, wide_sum
from .checks import accepts, unsupported


def _stash(x):
    return np.float64 if x.dtype == np.float64 else np.float32


def _bcast_channel(v, ndim):
    """Per-channel parameters against (N, C, ...); BatchNormalization with spatial=0
    (before opset 9) has one per channel and position, shaped (C, ...)."""
    if v.ndim > 1:
        return v[None]
    return v.reshape((1, -1) + (1,) * (ndim - 2))


@kernel("BatchNormalization")
@accepts("float")
def batch_norm(inputs, attrs, ctx):
    x, scale, bias, mean, var = inputs[:5]
    eps = attrs.get("epsilon", 1e-5)
    training = attrs.get("training_mode", 0) if ctx.opset >= 14 else ctx.num_outputs > 1
    if training:
        axes = (0,) + tuple(range(2, x.ndim))
        cur_mean = x.mean(axis=axes)
        cur_var = x.var(axis=axes)
        m = attrs.get("momentum", 0.9)
        y = (x - _bcast_channel(cur_mean, x.ndim)) / np.sqrt(_bcast_channel(cur_var, x.ndim) + eps)
        y = y * _bcast_channel(scale, x.ndim) + _bcast_channel(bias, x.ndim)
        run_mean = (mean * m + cur_mean * (1 - m)).astype(mean.dtype)
        run_var = (var * m + cur_var * (1 - m)).astype(var.dtype)
        outs = [y.astype(x.dtype), run_mean, run_var]
        if ctx.opset < 14:
            outs += [cur_mean.astype(mean.dtype), (1 / np.sqrt(cur_var + eps)).astype(var.dtype)]
        return outs[:ctx.num_outputs]
    inv = (scale / np.sqrt(var.astype(np.float64) + eps)).astype(x.dtype)
    shift = (bias - mean * inv).astype(x.dtype)
    if inv.ndim == 1 and x.ndim >= 2 and x.dtype in (np.float32, np.float64):
        # one pass over x instead of numpy's two (multiply, then add into a temporary)
        xc = np.ascontiguousarray(x)
        planes = xc.reshape(x.shape[0], x.shape[1], -1)
        out = np.empty_like(planes)
        _scale_shift(planes, inv, shift, out)
        return [out.reshape(x.shape)]
    return [x * _bcast_channel(inv, x.ndim) + _bcast_channel(shift, x.ndim)]


@nb.njit(cache=True)
def _scale_shift(x, scale, shift, out):
    """out[n, c, :] = x[n, c, :] * scale[c] + shift[c]."""
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            s, t = scale[c], shift[c]
            src, dst = x[b, c], out[b, c]
            for i in range(src.shape[0]):
                dst[i] = src[i] * s + t


# reassociation lets the float64 sums vectorise; NaN and inf still propagate ("nnan" unset)
@nb.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "nsz", "arcp"},
         nogil=True)
def _layer_norm_rows(x, scale, bias, eps, out, mean_out, inv_out):
    """Row-wise layer normalisation of ``x`` (rows, n); statistics accumulate in float64."""
    n = x.shape[1]
    for r in range(x.shape[0]):
        row = x[r]
        acc = 0.0
        for i in range(n):
            acc += row[i]
        mean = acc / n
        acc = 0.0
        for i in range(n):
            d = row[i] - mean
            acc += d * d
        m = row.dtype.type(mean)
        inv = row.dtype.type(1.0 / np.sqrt(acc / n + eps))
        mean_out[r] = m
        inv_out[r] = inv
        dst = out[r]
        for i in range(n):
            dst[i] = (row[i] - m) * inv * scale[i] + bias[i]


def _normalize(x, axes, eps):
    st = _stash(x)
    xs = x.astype(st, copy=False)
    mean = wide_mean(xs, axes).astype(st)
    d = xs - mean
    var = wide_mean(d * d, axes).astype(st)
    inv = 1 / np.sqrt(var + st(eps))
    d *= inv
    return d, mean, inv


@kernel("InstanceNormalization")
@accepts("float")
def instance_norm(inputs, attrs, ctx):
    x, scale, bias = inputs
    y, _, _ = _normalize(x, tuple(range(2, x.ndim)), attrs.get("epsilon", 1e-5))
    return [(y * _bcast_channel(scale, x.ndim) + _bcast_channel(bias, x.ndim)).astype(x.dtype)]


@kernel("LayerNormalization")
@accepts("float")
def layer_norm(inputs, attrs, ctx):
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = attrs.get("axis", -1) % x.ndim
    eps = attrs.get("epsilon", 1e-5)
    inner = x.shape[axis:]
    if (x.dtype in (np.float32, np.float64) and scale.shape == inner and scale.dtype == x.dtype
            and (bias is None or (bias.shape == inner and bias.dtype == x.dtype))
            and x.size > 0):
        # the usual transformer case, in one pass per row instead of six numpy passes
        rows = np.ascontiguousarray(x).reshape(-1, int(np.prod(inner)))
        y = np.empty_like(rows)
        stat_shape = x.shape[:axis] + (1,) * len(inner)
        mean = np.empty(rows.shape[0], x.dtype)
        inv = np.empty(rows.shape[0], x.dtype)
        b = np.zeros_like(scale) if bias is None else bias
        sc, bc = np.ascontiguousarray(scale).reshape(-1), np.ascontiguousarray(b).reshape(-1)
        threads.by_rows(lambda r0, r1: _layer_norm_rows(
            rows[r0:r1], sc, bc, float(eps), y[r0:r1], mean[r0:r1], inv[r0:r1]),
            len(rows), _ROW_ELEMENTS // rows.shape[1])
        return [y.reshape(x.shape), mean.reshape(stat_shape),
                inv.reshape(stat_shape)][:ctx.num_outputs]
    y, mean, inv = _normalize(x, tuple(range(axis, x.ndim)), eps)
    y *= scale
    if bias is not None:
        y += bias
    return [y.astype(x.dtype, copy=False), mean, inv][:ctx.num_outputs]


@kernel("GroupNormalization")
@accepts("float")
def group_norm(inputs, attrs, ctx):
    x, scale, bias = inputs
    g = attrs["num_groups"]
    n, c = x.shape[:2]
    xg = x.reshape(n, g, -1)
    y, _, _ = _normalize(xg, (2,), attrs.get("epsilon", 1e-5))
    y = y.reshape(x.shape)
    if ctx.opset < 21 and scale.size == g and g != c:  # opset 18: one scale per group
        scale, bias = np.repeat(scale, c // g), np.repeat(bias, c // g)
    return [(y * _bcast_channel(scale, x.ndim) + _bcast_channel(bias, x.ndim)).astype(x.dtype)]


@kernel("RMSNormalization")
@accepts("float")
def rms_norm(inputs, attrs, ctx):
    x, scale = inputs[0], inputs[1]
    axis = attrs.get("axis", -1) % x.ndim
    st = _stash(x)
    xs = x.astype(st, copy=False)
    ms = wide_mean(xs * xs, tuple(range(axis, x.ndim))).astype(st)
    return [(xs / np.sqrt(ms + st(attrs.get("epsilon", 1e-5))) * scale).astype(x.dtype)]


@kernel("LpNormalization")
@accepts("float")
def lp_norm(inputs, attrs, ctx):
    x = inputs[0]
    axis, p = attrs.get("axis", -1), attrs.get("p", 2)
    if p == 1:
        norm = wide_sum(np.abs(x), axis).astype(x.dtype)
    elif p == 2:
        norm = np.sqrt(wide_sum(x * x, axis)).astype(x.dtype)
    else:
        raise unsupported(ctx, f"LpNormalization with p={p}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return [np.where(norm == 0, 0, x / norm).astype(x.dtype)]


@kernel("MeanVarianceNormalization")
@accepts("float")
def mean_variance_norm(inputs, attrs, ctx):
    x = inputs[0]
    axes = tuple(attrs.get("axes", [0, 2, 3]))
    mean = wide_mean(x, axes).astype(x.dtype)
    std = np.sqrt(wide_mean((x - mean) ** 2, axes)).astype(x.dtype)
    return [((x - mean) / (std + 1e-9)).astype(x.dtype)]


@kernel("LRN")
@accepts("float")
def lrn(inputs, attrs, ctx):
    x = inputs[0]
    size = attrs["size"]
    alpha, beta, bias = attrs.get("alpha", 1e-4), attrs.get("beta", 0.75), attrs.get("bias", 1.0)
    c = x.shape[1]
    sq = (x.astype(np.float64) ** 2)
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    cs = np.concatenate([np.zeros_like(sq[:, :1]), np.cumsum(sq, axis=1)], axis=1)
    idx = np.arange(c)
    top, bottom = np.minimum(idx + hi + 1, c), np.maximum(idx - lo, 0)
    square_sum = cs[:, top] - cs[:, bottom]
    return [(x / (bias + alpha / size * square_sum) ** beta).astype(x.dtype)]


def _softmax_axes(x, attrs, ctx):
    """Reshape for the softmax family: before opset 13 the input is coerced to 2-D."""
    if ctx.opset < 13:
        axis = attrs.get("axis", 1) % max(x.ndim, 1)
        return x.reshape(int(np.prod(x.shape[:axis])), -1), 1
    return x, attrs.get("axis", -1)


def softmax_array(x, axis):
    if x.dtype == np.float16:  # in float32, rounded once (as torch does for half)
        return softmax_array(x.astype(np.float32), axis).astype(x.dtype)
    if x.dtype == np.float32 and axis in (-1, x.ndim - 1) and x.size and x.shape[-1]:
        if vecmath.fast():
            return softmax_rows32(x)
        # the usual last-axis case: the maximum, the difference and the sum in two
        # Numba passes over each row (numpy's exp between them, the same function)
        rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        e = np.empty_like(rows)

        def block(r0, r1):
            _minus_row_max(rows[r0:r1], e[r0:r1])
            np.exp(e[r0:r1], out=e[r0:r1])
            _divide_by_row_sum(e[r0:r1])

        threads.by_rows(block, len(rows), _ROW_ELEMENTS // rows.shape[1])
        return e.reshape(x.shape)
    # bfloat16 goes step by step, each rounded: that is how ONNX's Attention function
    # body (and its reference) computes it
    e = x - x.max(axis=axis, keepdims=True)
    np.exp(e, out=e)
    if e.dtype in (np.float32, np.float64):
        e /= wide_sum(e, axis).astype(e.dtype)
    else:
        e /= e.sum(axis=axis, keepdims=True)
    return e


# The least work of one task on the thread pool (elements): these passes take about a
# nanosecond an element, and a task much shorter than a fraction of a millisecond costs
# more than it gains when a busy neighbour delays the thread that took it (2 threads,
# load 3.3: Softmax on 2x12x197x197 in blocks of 2**15 elements 6.1 ms, of 2**19 2.6
# ms, on one thread 2.2 ms; LayerNormalization on 2x197x768 0.21 / 0.14 / 0.13 ms).
_ROW_ELEMENTS = 1 << 19


def softmax_rows32(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Softmax over the last axis of a float32 array with float32 products: one Numba
    pass per row (maximum, :func:`vecmath.exp32`, float64 sum, division), rows in blocks
    on npuc's threads; ``out`` (contiguous, of ``x``'s shape) receives it when given."""
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    e = np.empty_like(rows) if out is None else out.reshape(rows.shape)
    threads.by_rows(lambda r0, r1: _softmax_rows(rows[r0:r1], e[r0:r1]), len(rows),
                    _ROW_ELEMENTS // rows.shape[1])
    return e.reshape(x.shape)


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _softmax_rows(x, out):
    """out[r] = softmax of x[r] for every row (:func:`softmax_row`)."""
    for r in range(x.shape[0]):
        softmax_row(x[r], out[r])


@nb.njit(cache=True, error_model="numpy", nogil=True, fastmath={"contract"})
def softmax_row(row, dst):
    """dst = exp(row - max row) / sum, the exponentials of :func:`vecmath.exp32` (a NaN
    in the row makes the row NaN, as the general definition does); ``dst`` may be
    ``row``. Compiled on its own (not inlined into its callers' code), so every caller
    gets the same numbers whatever its own compile flags."""
    m = vecmath.row_max(row)
    if row.ctypes.data == dst.ctypes.data:
        # one name for the one buffer: LLVM does not vectorise a loop whose two arrays
        # overlap (in place, 4.3 ns an element instead of 1.4)
        for i in range(dst.shape[0]):
            dst[i] = vecmath.exp32(dst[i] - m)
    else:
        for i in range(row.shape[0]):
            dst[i] = vecmath.exp32(row[i] - m)
    divide_by_sum(dst)


@nb.njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc"})
def divide_by_sum(e):
    """e /= sum(e), the sum in float64 (reassociated: summed in vector lanes, an order
    fixed by the compiled code alone) and rounded once to float32. Its own loop: summed
    in the loop of the exponentials, the float64 lanes made LLVM compute those four at
    a time instead of eight (exp and sum 1.7 ns an element, apart 1.1)."""
    acc = 0.0
    for i in range(e.shape[0]):
        acc += np.float64(e[i])
    s = np.float32(acc)
    for i in range(e.shape[0]):
        e[i] = e[i] / s


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _minus_row_max(x, out):
    """out[r] = x[r] - max(x[r]) (a NaN in the row makes the maximum NaN, as numpy's)."""
    for r in range(x.shape[0]):
        row, m = x[r], x[r, 0]
        for i in range(row.shape[0]):
            v = row[i]
            if v > m or v != v:
                m = v
                if v != v:
                    break
        dst = out[r]
        for i in range(row.shape[0]):
            dst[i] = row[i] - m


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _divide_by_row_sum(e):
    """e[r] /= sum(e[r]), the sum accumulated in float64 and rounded once to float32."""
    for r in range(e.shape[0]):
        row = e[r]
        acc = 0.0
        for i in range(row.shape[0]):
            acc += np.float64(row[i])
        s = np.float32(acc)
        for i in range(row.shape[0]):
            row[i] = row[i] / s


@kernel("Softmax")
@accepts("float")
def softmax(inputs, attrs, ctx):
    x = inputs[0]
    x2, axis = _softmax_axes(x, attrs, ctx)
    return [softmax_array(x2, axis).reshape(x.shape)]


@kernel("LogSoftmax")
@accepts("float")
def log_softmax(inputs, attrs, ctx):
    x = inputs[0]
    x2, axis = _softmax_axes(x, attrs, ctx)
    wide = x2 if x2.dtype in (np.float32, np.float64) else x2.astype(np.float32)
    s = wide - wide.max(axis=axis, keepdims=True)
    out = s - np.log(wide_sum(np.exp(s), axis)).astype(s.dtype)
    return [out.astype(x.dtype, copy=False).reshape(x.shape)]


@kernel("Hardmax")
@accepts("float")
def hardmax(inputs, attrs, ctx):
    x = inputs[0]
    x2, axis = _softmax_axes(x, attrs, ctx)
    arg = np.expand_dims(np.argmax(x2, axis=axis), axis)
    y = np.zeros_like(x2)
    np.put_along_axis(y, arg, 1, axis=axis)
    return [y.reshape(x.shape)]

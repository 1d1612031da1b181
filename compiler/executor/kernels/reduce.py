"""Reductions: Reduce* and ArgMax/ArgMin; the prefix forms CumSum and CumProd; Det (of the
last two axes).

``axes`` is an attribute until opset 13 for ReduceSum and opset 18 for the others, an
optional input after. Reducing over an empty set gives the operation's identity (0 for
sums, 1 for products, -inf/+inf or the integer type's limit for max/min), as the ONNX
reference does. Float inputs accumulate in float64 (``accumulate``); the result keeps the
input dtype.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.errors import NpucError

from . import kernel
from .checks import accepts, checked_kernel, normalize_axes, normalize_axis

_AXES_INPUT_SINCE = {"ReduceSum": 13}


def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _highest(dtype):
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


def _compute_dtype(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind == "V" or x.dtype.kind == "f" and x.dtype != np.float64:
        # float64 accumulation: a float32 sum would depend on the layout (see accumulate)
        return x.astype(np.float64)
    if x.dtype == bool:
        return x.astype(np.uint8)
    return x


def _logsumexp(x, axis, keepdims):
    x = x.astype(np.float64) if x.dtype.kind != "f" else x
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return s if keepdims else np.squeeze(s, axis=axis)


_REDUCERS = {
    "ReduceSum": lambda x, a, k: np.sum(x, axis=a, keepdims=k),
    "ReduceMean": lambda x, a, k: np.mean(x, axis=a, keepdims=k),
    "ReduceMax": lambda x, a, k: np.max(x, axis=a, keepdims=k, initial=_lowest(x.dtype)),
    "ReduceMin": lambda x, a, k: np.min(x, axis=a, keepdims=k, initial=_highest(x.dtype)),
    "ReduceProd": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "ReduceL1": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
    "ReduceL2": lambda x, a, k: np.sqrt(np.sum(np.square(x), axis=a, keepdims=k)),
    "ReduceSumSquare": lambda x, a, k: np.sum(np.square(x), axis=a, keepdims=k),
    "ReduceLogSum": lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k)),
    "ReduceLogSumExp": _logsumexp,
}


def reduction_axes(op: str, inputs, attrs, ctx, rank: int):
    """The axes to reduce as a tuple, or None when the node is a no-op."""
    if ctx.opset >= _AXES_INPUT_SINCE.get(op, 18):
        v = inputs[1] if len(inputs) > 1 else None
        axes = None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]
    else:
        axes = attrs.get("axes")
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return None
        return tuple(range(rank))
    return tuple(normalize_axes(axes, rank, ctx))


def _reduce(op: str, fn) -> None:
    @checked_kernel(op)
    def run(inputs, attrs, ctx):
        x = inputs[0]
        axes = reduction_axes(op, inputs, attrs, ctx, x.ndim)
        if axes is None:
            return [x]
        keepdims = bool(attrs.get("keepdims", 1))
        with np.errstate(all="ignore"):
            r = fn(_compute_dtype(x), axes, keepdims)
        return [np.asarray(r).astype(x.dtype)]

    run.__name__ = op.lower()
    run.__doc__ = f"ONNX {op} with ``keepdims`` and ``noop_with_empty_axes``."


for _op, _fn in _REDUCERS.items():
    _reduce(_op, _fn)


def _arg(op: str, fn) -> None:
    @checked_kernel(op)
    def run(inputs, attrs, ctx):
        x = inputs[0]
        axis = normalize_axis(attrs.get("axis", 0), x.ndim, ctx)
        if x.shape[axis] == 0:
            raise NpucError(f"{ctx.describe()}: cannot take {op} of an empty axis")
        keepdims = bool(attrs.get("keepdims", 1))
        x = _compute_dtype(x)
        if attrs.get("select_last_index", 0):
            r = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis, keepdims=keepdims)
        else:
            r = fn(x, axis=axis, keepdims=keepdims)
        return [np.asarray(r, dtype=np.int64)]

    run.__name__ = op.lower()
    run.__doc__ = f"ONNX {op} with ``keepdims`` and ``select_last_index``."


_arg("ArgMax", np.argmax)
_arg("ArgMin", np.argmin)


@checked_kernel("Det")
def det(inputs, attrs, ctx):
    """ONNX Det over the last two axes."""
    x = inputs[0]
    wide = x.astype(np.float64) if x.dtype != np.float64 else x
    return [np.asarray(np.linalg.det(wide)).astype(x.dtype)]


@kernel("CumSum")
@accepts("float", "int")
def cumsum(inputs, attrs, ctx):
    x, axis = inputs[0], int(np.asarray(inputs[1]).reshape(-1)[0])
    if attrs.get("reverse", 0):
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=x.dtype)
    if attrs.get("exclusive", 0):
        y = np.roll(y, 1, axis=axis)
        sel = [slice(None)] * x.ndim
        sel[axis] = 0
        y[tuple(sel)] = 0
    return [np.flip(y, axis) if attrs.get("reverse", 0) else y]


@kernel("CumProd")
@accepts("float", "int")
def cumprod(inputs, attrs, ctx):
    x, axis = inputs[0], int(np.asarray(inputs[1]).reshape(-1)[0])
    axis %= max(x.ndim, 1)
    reverse, exclusive = attrs.get("reverse", 0), attrs.get("exclusive", 0)
    if reverse:
        x = np.flip(x, axis)
    if exclusive:  # shift right by one along the axis, the first product being 1
        ones = np.ones_like(np.take(x, [0], axis=axis))
        x = np.concatenate([ones, np.take(x, np.arange(x.shape[axis] - 1), axis=axis)], axis)
    y = np.cumprod(x, axis=axis, dtype=x.dtype)
    return [np.flip(y, axis) if reverse else y]

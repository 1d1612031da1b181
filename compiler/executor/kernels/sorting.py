"""Operators that sort: TopK (the k largest or smallest along an axis) and Unique."""

from __future__ import annotations

import numpy as np

from . import kernel
from .checks import accepts, checked_kernel


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


@kernel("TopK")
@accepts("float", "int")
def topk(inputs, attrs, ctx):
    x = inputs[0]
    k = int(attrs["k"]) if ctx.opset < 10 else int(np.asarray(inputs[1]).reshape(-1)[0])
    axis = attrs.get("axis", -1) % x.ndim
    largest = attrs.get("largest", 1)
    key = x.astype(np.int64) if x.dtype.kind == "u" else x
    # A stable sort keeps equal values in index order, as ONNX asks.
    order = np.argsort(-key if largest else key, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]

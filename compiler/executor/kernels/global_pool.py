"""Pooling over the whole image: GlobalAveragePool, GlobalMaxPool, GlobalLpPool (one value
per image and channel, in the input dtype; averages and norms accumulate in float64, whose
53 bits hold a plane's float32 sum exactly unless its values span many binary orders of
magnitude, so the order of the additions does not show after the rounding)."""

from __future__ import annotations

import numba as nb
import numpy as np

from .. import threads
from . import kernel
from .checks import accepts


def _spatial_axes(x):
    return tuple(range(2, x.ndim))


@nb.njit(cache=True, nogil=True)
def _row_means(x, out, r0, r1):
    """out[r] = the float64 sum of row r of x divided by its length, for r in [r0, r1);
    four rows at a time, so that four independent sums fill the adder's pipeline."""
    m = x.shape[1]
    r = r0
    while r + 4 <= r1:
        s0 = s1 = s2 = s3 = 0.0
        for j in range(m):
            s0 += np.float64(x[r, j])
            s1 += np.float64(x[r + 1, j])
            s2 += np.float64(x[r + 2, j])
            s3 += np.float64(x[r + 3, j])
        out[r], out[r + 1], out[r + 2], out[r + 3] = s0 / m, s1 / m, s2 / m, s3 / m
        r += 4
    for q in range(r, r1):
        s = 0.0
        for j in range(m):
            s += np.float64(x[q, j])
        out[q] = s / m


@kernel("GlobalAveragePool")
@accepts("float")
def global_average_pool(inputs, attrs, ctx):
    x = inputs[0]
    if x.dtype not in (np.float32, np.float64) or x.ndim < 3 or x.size == 0:
        return [x.mean(axis=_spatial_axes(x), keepdims=True, dtype=np.float64).astype(x.dtype)]
    rows = np.ascontiguousarray(x).reshape(x.shape[0] * x.shape[1], -1)
    out = np.empty(rows.shape[0], dtype=x.dtype)
    # blocks of rows on npuc's threads when there is enough to share
    step = threads.block(rows.shape[0]) if rows.size >= 1 << 20 else rows.shape[0]
    threads.parallel(lambda i: _row_means(rows, out, i * step, min(len(out), (i + 1) * step)),
                     -(-len(out) // step))
    return [out.reshape(x.shape[:2] + (1,) * (x.ndim - 2))]


@kernel("GlobalMaxPool")
@accepts("float", "int")
def global_max_pool(inputs, attrs, ctx):
    x = inputs[0]
    return [x.max(axis=_spatial_axes(x), keepdims=True)]


@kernel("GlobalLpPool")
@accepts("float")
def global_lp_pool(inputs, attrs, ctx):
    x = inputs[0]
    p = attrs.get("p", 2)
    s = (np.abs(x.astype(np.float64)) ** p).sum(axis=_spatial_axes(x), keepdims=True)
    return [(s ** (1.0 / p)).astype(x.dtype)]

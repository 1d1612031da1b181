"""A convolution's blocks run without the interpreter: each thread of npuc's pool makes
one call of a Numba function that takes blocks from an atomic counter (:func:`take`)
until none is left.

Through :func:`.threads.parallel`, every block is a Python call: its slicing, numpy's
product dispatch and the epilogue's dispatch take the interpreter's lock, which the
other thread then waits for, and each costs microseconds more when it runs cold after
megabytes of products. :func:`pointwise` runs the blocks of a 1x1 convolution with unit
strides (its columns are the image itself) as :mod:`.conv_columns` cuts them, each the
same call: register tiles (:func:`.tiles32.gemm`), or numpy's own ``cblas_sgemm``
(:mod:`.numpy_blas`) then the epilogue's float32 operations
(:meth:`.epilogue.Epilogue.span`), so the bits are those of the Python path.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .. import threads
from . import numpy_blas, tiles32
from .epilogue import bias_clamp, bias_residual_clamp


@intrinsic
def take(typingctx, counter):
    """The value of ``counter[0]`` (an int64 array), increased by one atomically."""
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.atomic_rmw("add", data, ir.Constant(ir.IntType(64), 1), "seq_cst")

    return sig, codegen


def pointwise(wm, x, out, cols, rows, epilogue, tiled: bool) -> bool:
    """``out`` (N, M, P) = the 1x1 convolution of ``x`` (N, C, P, C-contiguous) with the
    weights ``wm`` (groups, M / groups, K), blocks ``cols`` by ``rows`` of each image and
    group, then ``epilogue``; True when done, False when it cannot run here (an epilogue
    that is not bias, residual and clamp in float32, or no numpy BLAS to call)."""
    parts = None if epilogue is None else epilogue.tiles()
    if (epilogue is not None and parts is None) or out.size == 0 or wm.shape[2] == 0:
        return False  # (a sum of no terms: numpy's product makes zeros without BLAS)
    fn, wide = (0, False) if tiled else numpy_blas.address()
    if not tiled and (not fn or any(p1 - p0 == 1 for p0, p1 in cols) or
                      any(r1 - r0 == 1 for r0, r1 in rows)):
        return False  # (numpy takes gemv for a single row or column, not cblas_sgemm)
    none = np.empty(0, np.float32)
    bias, res, lo, hi, flags = parts or (none, none, np.float32(1), np.float32(0), 0)
    counter = np.zeros(1, np.int64)
    blas = np.array([fn, int(wide)], np.int64)
    weights = np.ascontiguousarray(wm).reshape(-1)
    c = np.array(cols, np.int64).reshape(-1, 2)
    r = np.array(rows, np.int64).reshape(-1, 2)
    shape = np.array([out.shape[0], wm.shape[0], x.shape[1], x.shape[2], wm.shape[1],
                      wm.shape[2]], np.int64)

    def work(_):
        _pointwise(counter, shape, c, r, x.reshape(-1), weights, out.reshape(-1), blas, tiled,
                   bias, res, lo, hi, flags)

    threads.parallel(work, threads.compute_threads())
    return True


@nb.njit(cache=True, nogil=True)
def _pointwise(counter, shape, cols, rows, x, weights, out, blas, tiled, bias, res, lo, hi,
               flags):
    """The blocks of :func:`pointwise` (``shape``: images, groups, channels, positions,
    rows and terms of a group), as ``conv_columns._products`` computes them."""
    n, group, c, p, mg, k = shape[0], shape[1], shape[2], shape[3], shape[4], shape[5]
    cg, m = c // group, group * mg
    per_image = group * len(cols) * len(rows)
    none = bias[:0]
    while True:
        i = take(counter)
        if i >= n * per_image:
            return
        b, rest = i // per_image, i % per_image
        g, rest = rest // (len(cols) * len(rows)), rest % (len(cols) * len(rows))
        ci, ri = rest // len(rows), rest % len(rows)
        p0, p1 = cols[ci, 0], cols[ci, 1]
        r0, r1 = g * mg + rows[ri, 0], g * mg + rows[ri, 1]
        first, at = (b * c + g * cg) * p + p0, (b * m + r0) * p + p0
        if tiled:
            tiles32.gemm(weights, r0 * k, k, r1 - r0, k, x, first, p, p1 - p0, out, at, p,
                         bias[r0:] if len(bias) else bias, res, lo, hi, flags)
            continue
        numpy_blas.sgemm(blas[0], blas[1] != 0, r1 - r0, p1 - p0, k, weights, r0 * k, k, x,
                         first, p, out, at, p)
        if flags == 0:
            continue
        row_bias = bias[r0:r1] if len(bias) else bias
        if len(res):
            bias_residual_clamp(out, res, at, p, r1 - r0, p1 - p0, row_bias, none, lo, hi)
        else:
            bias_clamp(out, at, p, r1 - r0, p1 - p0, row_bias, none, lo, hi)

"""Float32 products of a few rows by a matrix stored as its transpose: a classifier's
Gemm (``transB=1``, as PyTorch exports ``nn.Linear``) on a small batch.

BLAS packs the whole ``K x N`` right-hand matrix before it multiplies, so a product of
two rows reads the weights once to pack them, writes the packed copy and reads it again,
on one thread (below :data:`.products32.SPLIT_WORK` it is one call). Here each element
of the result is one dot product of a row of the left operand with a row of the stored
transpose, ``out[i, j] = a[i, :] . w[j, :]``: the weights are read once, in order, in
blocks of rows on npuc's pool. MobileNetV2's classifier (2 x 1280 by 1280 x 1000), in
cache on one thread: 0.45 ms against OpenBLAS's 0.86 ms.

Every element is the same dot product (:func:`_dots`: vectorized over the terms, in an
order fixed by ``K`` alone), whatever block or thread computes it, so the bits depend on
the shapes only, never on the cut or the thread count.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .. import threads

COLUMNS = 64  # result columns (weight rows) of one task, at least


@nb.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dots(a, w, out, j0, j1):
    """``out[i, j] = sum_t a[i, t] * w[j, t]`` for every row ``i`` and ``j0 <= j < j1``
    (all three C-contiguous float32)."""
    m, k = a.shape
    for j in range(j0, j1):
        for i in range(m):
            s = np.float32(0)
            for t in range(k):
                s += a[i, t] * w[j, t]
            out[i, j] = s


def matmul(a: np.ndarray, b: np.ndarray, y: np.ndarray, epilogue=None) -> None:
    """``y = a @ b`` (:func:`.products32.skinny`), then ``epilogue`` (called as
    :func:`.accumulate.matmul` calls it) once on the whole result, a few rows: applied
    to each block on the pool, its numpy calls held the interpreter's lock that the other
    thread's block then waited for (the classifier of MobileNetV2 took 0.53 ms instead of
    0.37 on two threads, of ResNet-50 0.66 instead of 0.53, in paired runs)."""
    a = np.ascontiguousarray(a)  # (one layout: one compiled loop, the same bits)
    w = b.T
    m, n = y.shape
    step = max(COLUMNS, -(-n // (4 * threads.compute_threads())))

    def task(i):
        j0, j1 = i * step, min(n, (i + 1) * step)
        _dots(a, w, y, j0, j1)

    threads.parallel(task, -(-n // step))
    if epilogue is not None:
        epilogue(y, (), slice(0, m), slice(0, n), y.shape)

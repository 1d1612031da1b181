"""Float32 products (``execute(..., products="float32")``): how a product is cut into
BLAS calls and run on npuc's threads. :func:`accumulate.matmul` sends here every
product of a float32-products run whose operands are floats of at most 32 bits.

The bits of a float32 product depend on how it is cut into BLAS calls, so the cut is a
function of the shapes alone (:func:`tiles`), never of the thread count or the load.
A product of a few rows by a stored transpose (a classifier's Gemm) is a set of dot
products instead (:mod:`.skinny32`), which read the weights once.
"""

from __future__ import annotations

import numpy as np

from .. import threads


def view(out, shape):
    """``out`` seen with ``shape`` without a copy, or None (no ``out``, or not possible)."""
    if out is None:
        return None
    v = out.view()
    try:
        v.shape = shape
    except (AttributeError, ValueError):  # the layout needs a copy, or another size
        return None
    return v


# The cut of a float32 product into BLAS calls (speed; the bits of a float32 product
# depend on its cut, so it is a function of the shapes alone). Each call packs its
# blocks of both operands before multiplying, so every extra call repacks: on one
# thread (OpenBLAS, 256x768 @ 768x3072 and 394x3072 @ 3072x768, load 3-4) one call ran
# at 68-82 GFLOP/s, two column blocks 4% slower, eight 8-12% slower, a 2x2 cut slower
# than 1x4 and two row blocks slower than two column blocks. So a product is cut into
# as few calls as keep both cores busy: two, or more of at most TILE_WORK multiply-adds
# each, an even count (two threads finish together), along the cheaper axis.
TILE_WORK = 1 << 28  # multiply-adds of one call at most (about 4 ms on one core)
SPLIT_WORK = 1 << 22  # a product below this is one call (a task costs tens of µs)
TILE_MIN = 16  # the fewest rows or columns of a block (BLAS's vector width)
TILE_ROWS = 256  # rows of a block of a batch of products (attention's heads)
BATCH = 4  # a batch of at least this many products has work for every thread


def tiles(m: int, n: int, k: int = 1, batch: int = 1) -> list[tuple[int, int, int, int]]:
    """The (row, column) blocks each float32 product of a batch of ``batch`` products of
    an ``m x n`` result summing over ``k`` is computed in, one BLAS call each, ``k``
    never cut: a function of the shapes alone (see :data:`TILE_WORK`), columns in
    multiples of :data:`TILE_MIN`. The products of a large batch (attention's heads)
    are cut in blocks of at most :data:`TILE_ROWS` rows only, as npuc::Attention cuts
    them (:func:`row_cut`)."""
    if batch >= BATCH:
        rows = -(-m // -(-m // TILE_ROWS)) if m else 1
        return [(r, min(m, r + rows), 0, n) for r in range(0, max(m, 1), rows)]
    work = m * n * max(k, 1)
    count = 1 if work < SPLIT_WORK else max(2, -(-work // TILE_WORK))
    count += count % 2 if count > 1 else 0
    rows_max, cols_max = max(1, m // TILE_MIN), max(1, n // TILE_MIN)
    cut = (1, 1)
    while count > 1:
        # r row blocks by c column blocks: A is packed c times and B r times, and a row
        # cut also shortens each call's reuse of its packed B (measured slower: weighed 2x)
        fits = [(m * (count // r) + 2 * n * r, r, count // r) for r in range(1, count + 1)
                if count % r == 0 and r <= rows_max and count // r <= cols_max]
        if fits:
            cut = min(fits)[1:]
            break
        count -= 1
    rows = -(-m // cut[0]) if m else 1
    cols = -(-n // cut[1]) if n else 1
    cols = min(n, -(-cols // TILE_MIN) * TILE_MIN) if n else 1
    return [(r, min(m, r + rows), c, min(n, c + cols))
            for r in range(0, max(m, 1), rows) for c in range(0, max(n, 1), cols)]


def row_cut(m: int, n: int, k: int, batch: int) -> list[int] | None:
    """The first rows of the blocks a batch of float32 products (``m x n``, summing over
    ``k``) is cut in, when it is cut along rows only; else None. A fused kernel that
    makes the same calls gives the same bits as the separate products."""
    cut = tiles(m, n, k, batch)
    if any(c0 != 0 or c1 != n for _, _, c0, c1 in cut):
        return None
    return [r0 for r0, _, _, _ in cut]


SKINNY_ROWS = 4  # products with at most this many result rows ...
SKINNY_WEIGHTS = 1 << 16  # ... and a right-hand matrix of at least this many elements


def skinny(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> bool:
    """Whether ``a @ b`` into ``y`` (2-D float32 arrays) is computed as dot products
    (:mod:`.skinny32`): few rows, and ``b`` the transpose of a C-contiguous matrix."""
    return (a.ndim == b.ndim == y.ndim == 2 and a.shape[0] <= SKINNY_ROWS and
            b.size >= SKINNY_WEIGHTS and a.dtype == b.dtype == y.dtype == np.float32 and
            b.T.flags.c_contiguous and y.flags.c_contiguous)


def finish(y: np.ndarray, epilogue) -> np.ndarray:
    """``y`` with ``epilogue`` applied to the whole of it, one batch index at a time."""
    y2 = y.reshape((1,) * (2 - y.ndim) + y.shape) if y.ndim < 2 else y
    everything = slice(None)
    for k in np.ndindex(y2.shape[:-2]):
        epilogue(y2[k], k, everything, everything, y2.shape)
    return y


def _flat_epilogue(epilogue) -> bool:
    """Whether ``epilogue`` sees the same numbers when a batch of rows is one product: it
    has no bias, or its bias varies along the last axis only."""
    return epilogue is None or (hasattr(epilogue, "bias") and np.ndim(epilogue.bias) <= 1)


def narrow(a: np.ndarray) -> np.ndarray:
    """``a`` as float32 (no copy for float32)."""
    return a if a.dtype == np.float32 else a.astype(np.float32)


def matmul32(a, b, out, rtype, epilogue=None):
    """``a @ b`` with float32 products and sums, in the blocks of :func:`tiles`, the
    blocks (and batches of them) handed to npuc's threads; ``epilogue`` as
    :func:`accumulate.matmul` says."""
    if a.ndim < 2 or b.ndim < 2:
        y = np.matmul(narrow(a), narrow(b))
        if out is not None:
            np.copyto(out, y.reshape(out.shape), casting="unsafe")
            y = out
        else:
            y = y.astype(rtype, copy=False)
        return y if epilogue is None else finish(y, epilogue)
    lead = int(np.prod(a.shape[:-1]))  # (not -1: a product of no terms has size 0)
    flat = view(out, (lead, b.shape[-1]))
    if (b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous and (out is None or flat is not None)
            and _flat_epilogue(epilogue)):
        y = matmul32(a.reshape(lead, a.shape[-1]), b, flat, rtype,
                      epilogue)  # one product, not a batch
        return out if out is not None else y.reshape(a.shape[:-1] + b.shape[-1:])
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, n = a.shape[-2], b.shape[-1]
    y = view(out, batch + (m, n)) if out is not None and out.dtype == np.float32 else None
    direct = y is not None or (out is None and rtype == np.float32)
    if y is None:
        y = np.empty(batch + (m, n), dtype=np.float32)
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    count = int(np.prod(batch, dtype=np.int64))
    blocks = tiles(m, n, a.shape[-1], count)
    # tasks take several whole products of a batch when there are many (speed only:
    # the blocks, hence the bits, stay those of tiles)
    per_task = max(1, count // (4 * threads.compute_threads())) if len(blocks) == 1 else 1

    # the epilogue runs on the float32 tiles when the result is float32 (else after the
    # rounding to the narrow type, as the separate operators would)
    tiled = epilogue if (out if out is not None else y).dtype == np.float32 else None

    def task(i):
        t = blocks[i % len(blocks)]
        first = (i // len(blocks)) * per_task
        for j in range(first, min(count, first + per_task)):
            k = np.unravel_index(j, batch) if batch else ()
            tile = y[k][t[0]:t[1], t[2]:t[3]]
            np.matmul(narrow(a[k][t[0]:t[1]]), narrow(b[k][:, t[2]:t[3]]), out=tile)
            if tiled is not None:
                tiled(tile, k, slice(t[0], t[1]), slice(t[2], t[3]), y.shape)

    if not batch and skinny(a, b, y):  # a few rows by a stored transpose
        from . import skinny32  # (Numba: loaded when a product needs it)

        skinny32.matmul(a, b, y, tiled)
    else:
        threads.parallel(task, len(blocks) * -(-count // per_task))
    if out is not None:
        if not direct:
            np.copyto(out, y.reshape(out.shape), casting="unsafe")
        result = out
    else:
        result = y if direct else y.astype(rtype)
    if epilogue is not None and tiled is None:
        finish(result, epilogue)
    return result



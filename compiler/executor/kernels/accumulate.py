"""How npuc defines the number a dot product gives.

Every floating-point matrix product, convolution and einsum in npuc accumulates its
products in float64 and rounds the sum once to the result type (float32, or the narrow
type of the inputs); sums and means over an axis (softmax, normalizations, reductions) do
the same. That is the IR's definition of these operators, and the graph
interpreter and the command-stream simulator both compute it through the functions
below.

Why: a float32 sum depends on the order of its additions, and BLAS picks the order from
the matrix sizes, the thread count and the position of an element in its block. A
program tiled along M or N would then differ from the whole-tensor product in the last
bit of float32, and a later rounding to bf16, fp16 or fp8 turns one float32 ulp into a
whole narrow-type step (program-vs-IR SQNR around 50 dB on BERT-base at bf16). A float64
sum of float32 products carries 29 more bits than the result keeps, so every order BLAS
may choose gives the same float32 after the one rounding, except for sums that fall
within about 2^-53 of a float32 rounding boundary (an event too rare to meet in a model).

The products of bf16, fp16 and fp8 inputs are exact in float64, so the chips' "multiply
narrow, accumulate wide" is what this computes; a chip that accumulates in float32 with a
fixed order differs from it by float32 rounding of partial sums, which is below every
verification tolerance.

A second precision is chosen explicitly for runs where the user waits for a float model
(``execute(..., products="float32")``: calibration, ``npuc run``): float32 products and
sums in float32 BLAS, as onnxruntime computes them, about twice as fast. Its bits depend
on how a product is cut into BLAS calls, so the cut is fixed by the shapes alone
(:func:`_tiles`), never by the thread count or the load: 1, 2 or 3 threads give the same
bits. Inputs of type float64 keep float64 products; bf16, fp16 and fp8 inputs are widened
to float32 and their products summed in float32 (rounded once to the narrow type). The
simulator, verification and everything that compares a program with its IR keep the
float64 definition.
"""

from __future__ import annotations

import numpy as np

from .. import threads


def result_type(*arrays) -> np.dtype:
    """The type a float product of ``arrays`` is rounded to: the widest input float type
    (ml_dtypes' narrow floats keep their own type)."""
    dts = [np.asarray(a).dtype for a in arrays]
    if any(d.kind == "V" for d in dts):
        return dts[0]
    return np.result_type(*dts)


def product_type(*dtypes) -> np.dtype:
    """The type a product of operands and result of ``dtypes`` multiplies and sums in:
    float64, or float32 in a float32-products run when every one of them is a float of
    at most 32 bits (float64 operands keep float64 products)."""
    if threads.products() == "float32" and all(
            d.kind == "V" or (d.kind == "f" and d.itemsize <= 4) for d in map(np.dtype, dtypes)):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def wide(a) -> np.ndarray:
    """``a`` as float64 (a no-op for float64 input)."""
    a = np.asarray(a)
    return a if a.dtype == np.float64 else a.astype(np.float64)


def matmul(a, b, out: np.ndarray | None = None, dtype=None, epilogue=None) -> np.ndarray:
    """``a @ b`` (numpy broadcasting), accumulated in float64 and rounded once.

    ``out``, when given, receives the result (any layout numpy can write); ``dtype`` is the
    result type when there is no ``out`` (default: :func:`result_type`).

    ``epilogue``: None, or a callable ``epilogue(tile, index, rows, cols, shape)`` that
    changes a finished part of the result in place (an :class:`~.epilogue.Epilogue`: a
    bias, then an activation): ``tile`` is the writable view ``result[index][rows, cols]``
    of the result whose whole shape is ``shape`` (``index`` a tuple over its batch axes,
    ``rows`` and ``cols`` slices of its last two axes; a result of fewer than two axes is
    seen as one row). A float32 product with a float32 result calls it on each BLAS tile
    right after the tile's call, on the same thread, while the tile is in cache; other
    products call it once per batch index on the rounded result. It must compute each
    element independently of the tile it is in (so the bits do not depend on the cut)
    and must not wait for npuc's pool (:func:`threads.parallel` inside it runs inline).

    Large products run as row blocks on npuc's threads (:func:`threads.parallel`), each
    block widened, multiplied and rounded in one go: a float64 row block differs from the
    whole product's rows at most in bits that the rounding to float32 drops (the same
    argument that makes a tiled program equal its IR), and the blocks keep the widened
    copies small enough for the cache.
    """
    a, b = np.asarray(a), np.asarray(b)
    rtype = np.dtype(dtype) if dtype is not None else result_type(a, b)
    if product_type(a.dtype, b.dtype, rtype if out is None else out.dtype) == np.float32:
        return _matmul32(a, b, out, rtype, epilogue)
    if epilogue is not None:
        return _finish(matmul(a, b, out=out, dtype=dtype), epilogue)
    if (a.ndim >= 2 and b.ndim == 2 and b.dtype != np.float64 and b.size > WIDE_LIMIT and
            b.shape[1] > 1 and (out is None or out.shape == a.shape[:-1] + b.shape[-1:])):
        return _by_columns(a, b, out, rtype)
    if a.ndim < 2 or b.ndim < 2 or a.dtype.kind == "V" or b.dtype.kind == "V":
        y = np.matmul(wide(a), wide(b))
        if out is not None:
            np.copyto(out, y.reshape(out.shape), casting="unsafe")
            return out
        return y.astype(rtype)
    flat = _view(out, (a.size // a.shape[-1], b.shape[-1]))
    if b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous and (out is None or flat is not None):
        y = matmul(a.reshape(-1, a.shape[-1]), b, out=flat,
                   dtype=rtype if out is None else None)  # one product, not a batch
        return out if out is not None else y.reshape(a.shape[:-1] + b.shape[-1:])
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, n = a.shape[-2], b.shape[-1]
    y = _view(out, batch + (m, n))
    direct = y is not None or out is None
    if y is None:
        y = np.empty(batch + (m, n), dtype=rtype if out is None else np.float64)
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(_wide_shared(b), batch + b.shape[-2:])  # once, not per block
    count = int(np.prod(batch, dtype=np.int64))
    rows = _rows_per_block(m, count)
    per = -(-m // rows)

    def block(i):
        j = np.unravel_index(i // per, batch) if batch else ()
        r0 = (i % per) * rows
        part = np.matmul(wide(a[j][r0:r0 + rows]), b[j])
        np.copyto(y[j][r0:r0 + rows], part, casting="unsafe")

    threads.parallel(block, count * per)
    if not direct:
        np.copyto(out, y.reshape(out.shape), casting="unsafe")
    return out if out is not None else y


WIDE_LIMIT = 1 << 24  # elements of a right-hand matrix widened to float64 at once (128 MB)


def _by_columns(a, b, out, rtype):
    """``a @ b`` for a large matrix ``b``, one block of its columns at a time: each
    output element is the same float64 dot product rounded once, and the float64 copy of
    ``b`` is never whole (a vocabulary-sized output projection would need gigabytes)."""
    y = out if out is not None else np.empty(a.shape[:-1] + b.shape[-1:], dtype=rtype)
    step = max(1, WIDE_LIMIT // b.shape[0])
    for n0 in range(0, b.shape[1], step):
        matmul(a, b[:, n0:n0 + step], out=y[..., n0:n0 + step])
    return y


def _wide_shared(b: np.ndarray) -> np.ndarray:
    """``b`` as float64, a large one widened in row blocks on npuc's threads (a serial
    copy of a weight matrix would hold up every thread of the product)."""
    if b.dtype == np.float64 or b.size < 1 << 16 or threads.compute_threads() <= 1:
        return wide(b)
    w = np.empty(b.shape, np.float64)
    flat_in, flat_out = b.reshape(-1, b.shape[-1]), w.reshape(-1, b.shape[-1])
    step = threads.block(len(flat_in))
    threads.parallel(lambda i: np.copyto(flat_out[i * step:(i + 1) * step],
                                         flat_in[i * step:(i + 1) * step]),
                     -(-len(flat_in) // step))
    return w


def _view(out, shape):
    """``out`` seen with ``shape`` without a copy, or None (no ``out``, or not possible)."""
    if out is None:
        return None
    v = out.view()
    try:
        v.shape = shape
    except (AttributeError, ValueError):  # the layout needs a copy, or another size
        return None
    return v


def _rows_per_block(m: int, batch: int) -> int:
    """Rows of one block: the whole product on one thread; otherwise about four blocks
    per thread (a thread slowed by a busy neighbour leaves its share to the others), at
    least 64 rows (fewer would repack the right-hand matrix too often)."""
    t = threads.compute_threads()
    if t <= 1 or batch >= 4 * t:
        return m
    return min(m, max(64, -(-m * batch // (4 * t))))


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


def _tiles(m: int, n: int, k: int = 1, batch: int = 1) -> list[tuple[int, int, int, int]]:
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
    tiles = _tiles(m, n, k, batch)
    if any(c0 != 0 or c1 != n for _, _, c0, c1 in tiles):
        return None
    return [r0 for r0, _, _, _ in tiles]


def _finish(y: np.ndarray, epilogue) -> np.ndarray:
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


def _narrow(a: np.ndarray) -> np.ndarray:
    """``a`` as float32 (no copy for float32)."""
    return a if a.dtype == np.float32 else a.astype(np.float32)


def _matmul32(a, b, out, rtype, epilogue=None):
    """``a @ b`` with float32 products and sums, in the blocks of :func:`_tiles`, the
    blocks (and batches of them) handed to npuc's threads; ``epilogue`` as
    :func:`matmul` says."""
    if a.ndim < 2 or b.ndim < 2:
        y = np.matmul(_narrow(a), _narrow(b))
        if out is not None:
            np.copyto(out, y.reshape(out.shape), casting="unsafe")
            y = out
        else:
            y = y.astype(rtype, copy=False)
        return y if epilogue is None else _finish(y, epilogue)
    flat = _view(out, (a.size // a.shape[-1], b.shape[-1]))
    if (b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous and (out is None or flat is not None)
            and _flat_epilogue(epilogue)):
        y = _matmul32(a.reshape(-1, a.shape[-1]), b, flat, rtype,
                      epilogue)  # one product, not a batch
        return out if out is not None else y.reshape(a.shape[:-1] + b.shape[-1:])
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, n = a.shape[-2], b.shape[-1]
    y = _view(out, batch + (m, n)) if out is not None and out.dtype == np.float32 else None
    direct = y is not None or (out is None and rtype == np.float32)
    if y is None:
        y = np.empty(batch + (m, n), dtype=np.float32)
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    count = int(np.prod(batch, dtype=np.int64))
    tiles = _tiles(m, n, a.shape[-1], count)
    # tasks take several whole products of a batch when there are many (speed only:
    # the blocks, hence the bits, stay those of _tiles)
    per_task = max(1, count // (4 * threads.compute_threads())) if len(tiles) == 1 else 1

    # the epilogue runs on the float32 tiles when the result is float32 (else after the
    # rounding to the narrow type, as the separate operators would)
    tiled = epilogue if (out if out is not None else y).dtype == np.float32 else None

    def task(i):
        t = tiles[i % len(tiles)]
        first = (i // len(tiles)) * per_task
        for j in range(first, min(count, first + per_task)):
            k = np.unravel_index(j, batch) if batch else ()
            tile = y[k][t[0]:t[1], t[2]:t[3]]
            np.matmul(_narrow(a[k][t[0]:t[1]]), _narrow(b[k][:, t[2]:t[3]]), out=tile)
            if tiled is not None:
                tiled(tile, k, slice(t[0], t[1]), slice(t[2], t[3]), y.shape)

    threads.parallel(task, len(tiles) * -(-count // per_task))
    if out is not None:
        if not direct:
            np.copyto(out, y.reshape(out.shape), casting="unsafe")
        result = out
    else:
        result = y if direct else y.astype(rtype)
    if epilogue is not None and tiled is None:
        _finish(result, epilogue)
    return result


def wide_sum(x, axis=None, keepdims: bool = True) -> np.ndarray:
    """``x.sum(axis)`` accumulated in float64, as a float64 array (float inputs).

    numpy sums a contiguous axis pairwise and a strided one in order, so the float32 sum
    of the same numbers depends on their layout in memory, and a program's tile and its
    IR's whole tensor lie differently; the float64 sum rounds to the same float32."""
    return np.sum(x, axis=axis, keepdims=keepdims, dtype=np.float64)


def wide_mean(x, axis=None, keepdims: bool = True) -> np.ndarray:
    """``x.mean(axis)`` accumulated in float64 (see :func:`wide_sum`)."""
    return np.mean(x, axis=axis, keepdims=keepdims, dtype=np.float64)


def einsum(equation: str, *operands, dtype=None) -> np.ndarray:
    """``np.einsum`` accumulated in float64 and rounded once (float32 in a
    float32-products run, on one thread: numpy's own order, fixed by the shapes)."""
    rtype = np.dtype(dtype) if dtype is not None else result_type(*operands)
    fast = product_type(rtype, *(np.asarray(o).dtype for o in operands)) == np.float32
    widen = _narrow if fast else wide
    y = np.einsum(equation, *(widen(o) for o in operands), optimize=len(operands) > 2)
    return np.asarray(y).astype(rtype, copy=False)

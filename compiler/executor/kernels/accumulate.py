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
(``products32.tiles``), never by the thread count or the load: 1, 2 or 3 threads give
the same bits. Inputs of type float64 keep float64 products; bf16, fp16 and fp8 inputs are widened
to float32 and their products summed in float32 (rounded once to the narrow type). The
simulator, verification and everything that compares a program with its IR keep the
float64 definition.
"""

from __future__ import annotations

import numpy as np

from .. import threads
from .products32 import finish, matmul32, narrow, view


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
        return matmul32(a, b, out, rtype, epilogue)
    if epilogue is not None:
        return finish(matmul(a, b, out=out, dtype=dtype), epilogue)
    if (a.ndim >= 2 and b.ndim == 2 and b.dtype != np.float64 and b.size > WIDE_LIMIT and
            b.shape[1] > 1 and (out is None or out.shape == a.shape[:-1] + b.shape[-1:])):
        return _by_columns(a, b, out, rtype)
    if a.ndim < 2 or b.ndim < 2 or a.dtype.kind == "V" or b.dtype.kind == "V":
        y = np.matmul(wide(a), wide(b))
        if out is not None:
            np.copyto(out, y.reshape(out.shape), casting="unsafe")
            return out
        return y.astype(rtype)
    lead = int(np.prod(a.shape[:-1]))  # (not -1: a product of no terms has size 0)
    flat = view(out, (lead, b.shape[-1]))
    if b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous and (out is None or flat is not None):
        y = matmul(a.reshape(lead, a.shape[-1]), b, out=flat,
                   dtype=rtype if out is None else None)  # one product, not a batch
        return out if out is not None else y.reshape(a.shape[:-1] + b.shape[-1:])
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    m, n = a.shape[-2], b.shape[-1]
    y = view(out, batch + (m, n))
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


def _rows_per_block(m: int, batch: int) -> int:
    """Rows of one block: the whole product on one thread; otherwise about four blocks
    per thread (a thread slowed by a busy neighbour leaves its share to the others), at
    least 64 rows (fewer would repack the right-hand matrix too often)."""
    t = threads.compute_threads()
    if t <= 1 or batch >= 4 * t:
        return max(1, m)  # (a product of no rows: one empty block)
    return max(1, min(m, max(64, -(-m * batch // (4 * t)))))


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
    widen = narrow if fast else wide
    y = np.einsum(equation, *(widen(o) for o in operands), optimize=len(operands) > 2)
    return np.asarray(y).astype(rtype, copy=False)

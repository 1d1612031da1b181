"""``npuc::KVCacheWrite``: new keys or values written into a KV cache at a position.

``KVCacheWrite(Cache, New, Position) {axis}``: ``Cache`` is a decoder's cache of keys (or
values) ``[batch, kv_heads, max_seq, head_dim]``, ``New`` the step's ``[batch, kv_heads,
s, head_dim]`` and ``Position`` the ``s`` cache positions they go to (int64, the same for
every sequence of the batch, as ``cache_position`` in HuggingFace's static cache). The
result is the cache with ``result[:, :, Position[j]] = New[:, :, j]`` along ``axis``.

``Row`` (optional, int64 ``[1]``): the first batch row of the cache that ``New``'s
sequences go to, ``result[Row + i, :, Position[j]] = New[i, :, j]`` (a prefill of one
request into its slot of a cache of several rows); without it, row 0.

On the chip the cache is device memory and the write is a DMA of the ``s`` new rows into
it (:mod:`npuc.compiler.schedule.kvcache`): the result is the same memory, never a copy.
The kernel below gives the IR its meaning (a copy, for the interpreter); the decomposition
is a ``ScatterND`` along the cache axis, for export.
"""

from __future__ import annotations

import numpy as np

from npuc.compiler.executor.kernels import kernel
from npuc.ir.errors import NpucError
from npuc.ir.schema import INT, register_op

from .emit import decomposition
from .shapes import same_shape as _same_shape

register_op("KVCacheWrite", inputs=("Cache", "New", "Position", "Row"), optional_inputs=1,
            attrs={"axis": (INT, 2)}, infer=_same_shape,
            doc="The cache with New written at Position along axis, from batch row Row on "
                "(in place on the chip).")


def check_positions(positions: np.ndarray, length: int, where: str) -> np.ndarray:
    """The positions as int64, each inside the cache; else a one-line error."""
    pos = np.asarray(positions).reshape(-1).astype(np.int64)
    bad = pos[(pos < 0) | (pos >= length)]
    if bad.size:
        raise NpucError(f"{where}: cache position {int(bad[0])} is outside the cache of "
                        f"{length} positions (the model was compiled with max_seq {length})")
    return pos


def check_row(row, rows: int, batch: int, where: str) -> int:
    """The first batch row a write of ``batch`` sequences goes to, its rows inside the
    cache's ``rows``; else a one-line error."""
    if row is None:
        return 0
    r = int(np.asarray(row).reshape(-1)[0])
    if r < 0 or r + batch > rows:
        raise NpucError(f"{where}: cache row {r} for {batch} sequence(s) is outside the "
                        f"cache of {rows} rows (the largest decode batch compiled)")
    return r


def write_rows(cache: np.ndarray, new: np.ndarray, pos: np.ndarray, axis: int,
               row: int = 0) -> None:
    """``cache[row + i, ..., pos[j], ...] = new[i, ..., j, ...]`` along ``axis``, in
    place."""
    dst = np.moveaxis(cache[row:row + new.shape[0]], axis, 0)
    dst[pos] = np.moveaxis(np.asarray(new, cache.dtype), axis, 0)


@kernel("KVCacheWrite", domain="npuc")
def kv_cache_write(inputs, attrs, ctx):
    cache, new, position = inputs[:3]
    axis = attrs.get("axis", 2) % cache.ndim
    pos = check_positions(position, cache.shape[axis], ctx.describe())
    row = check_row(inputs[3] if len(inputs) > 3 else None, cache.shape[0], new.shape[0],
                    ctx.describe())
    out = np.array(cache, copy=True)
    write_rows(out, new, pos, axis, row)
    return [out]


@decomposition("KVCacheWrite")
def _decompose(node, b):
    cache, new, position = node.inputs[:3]
    row = node.inputs[3] if len(node.inputs) > 3 else None
    rank = len(cache.type.shape)
    axis = node.attrs.get("axis", 2) % rank
    if row is None and cache.type.shape[0] != new.type.shape[0]:
        row = b.const(np.asarray([0], np.int64))  # the leading rows of a larger cache
    if row is not None and axis == 0:
        raise NpucError(f"{node.describe()}: a cache row with writes along axis 0")
    # positions first, then the batch rows: one ScatterND index per (position, row)
    perm = [axis] + [i for i in range(rank) if i != axis]
    back = [perm.index(i) for i in range(rank)]
    t = cache.type
    moved = t.with_shape(tuple(t.shape[i] for i in perm))
    data = b.op("Transpose", cache, perm=perm, out_type=moved)
    updates = b.op("Transpose", new, perm=perm,
                   out_type=new.type.with_shape(tuple(new.type.shape[i] for i in perm)))
    if row is None:
        index = b.op("Unsqueeze", position, b.const(np.asarray([1], np.int64)))
    else:
        index = _position_row_index(b, position, row, new.type.shape[axis],
                                    new.type.shape[0])
    out = b.op("ScatterND", data, index, updates, out_type=moved)
    return [b.op("Transpose", out, perm=back, out_type=node.outputs[0].type)]


def _position_row_index(b, position, row, s: int, batch: int):
    """ScatterND indices ``[s, batch, 2]``: ``(Position[j], Row + i)``."""
    from npuc.ir.types import tensor

    shape = b.const(np.asarray([s, batch, 1], np.int64))
    one = tensor("i64", [s, batch, 1])
    pos = b.op("Unsqueeze", position, b.const(np.asarray([1, 2], np.int64)),
               out_type=tensor("i64", [s, 1, 1]))
    rows = b.op("Add", row, b.const(np.arange(batch, dtype=np.int64)),
                out_type=tensor("i64", [batch]))
    rows = b.op("Unsqueeze", rows, b.const(np.asarray([0, 2], np.int64)),
                out_type=tensor("i64", [1, batch, 1]))
    both = [b.op("Expand", v, shape, out_type=one) for v in (pos, rows)]
    return b.op("Concat", *both, axis=2, out_type=tensor("i64", [s, batch, 2]))

"""``npuc::KVCacheWrite``: new keys or values written into a KV cache at a position.

``KVCacheWrite(Cache, New, Position) {axis}``: ``Cache`` is a decoder's cache of keys (or
values) ``[batch, kv_heads, max_seq, head_dim]``, ``New`` the step's ``[batch, kv_heads,
s, head_dim]`` and ``Position`` the ``s`` cache positions they go to (int64, the same for
every sequence of the batch, as ``cache_position`` in HuggingFace's static cache). The
result is the cache with ``result[:, :, Position[j]] = New[:, :, j]`` along ``axis``.

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

register_op("KVCacheWrite", inputs=("Cache", "New", "Position"), attrs={"axis": (INT, 2)},
            infer=_same_shape,
            doc="The cache with New written at Position along axis (in place on the chip).")


def check_positions(positions: np.ndarray, length: int, where: str) -> np.ndarray:
    """The positions as int64, each inside the cache; else a one-line error."""
    pos = np.asarray(positions).reshape(-1).astype(np.int64)
    bad = pos[(pos < 0) | (pos >= length)]
    if bad.size:
        raise NpucError(f"{where}: cache position {int(bad[0])} is outside the cache of "
                        f"{length} positions (the model was compiled with max_seq {length})")
    return pos


def write_rows(cache: np.ndarray, new: np.ndarray, pos: np.ndarray, axis: int) -> None:
    """``cache[..., pos[j], ...] = new[..., j, ...]`` along ``axis``, in place."""
    dst = np.moveaxis(cache, axis, 0)
    dst[pos] = np.moveaxis(np.asarray(new, cache.dtype), axis, 0)


@kernel("KVCacheWrite", domain="npuc")
def kv_cache_write(inputs, attrs, ctx):
    cache, new, position = inputs
    axis = attrs.get("axis", 2) % cache.ndim
    pos = check_positions(position, cache.shape[axis], ctx.describe())
    out = np.array(cache, copy=True)
    write_rows(out, new, pos, axis)
    return [out]


@decomposition("KVCacheWrite")
def _decompose(node, b):
    cache, new, position = node.inputs
    rank = len(cache.type.shape)
    axis = node.attrs.get("axis", 2) % rank
    perm = [axis] + [i for i in range(rank) if i != axis]
    back = [perm.index(i) for i in range(rank)]
    t = cache.type
    moved = t.with_shape(tuple(t.shape[i] for i in perm))
    data = b.op("Transpose", cache, perm=perm, out_type=moved)
    updates = b.op("Transpose", new, perm=perm,
                   out_type=new.type.with_shape(tuple(new.type.shape[i] for i in perm)))
    index = b.op("Unsqueeze", position, b.const(np.asarray([1], np.int64)))
    out = b.op("ScatterND", data, index, updates, out_type=moved)
    return [b.op("Transpose", out, perm=back, out_type=node.outputs[0].type)]

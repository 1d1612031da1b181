"""Indexing operators: Gather*, Scatter*, Compress, NonZero, OneHot, Trilu, ReverseSequence.

Indices are checked before use: an index outside its dimension is bad data and raises an
``NpucError`` naming the node rather than reading or writing outside the tensor. Negative
indices count from the end, as ONNX allows.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.errors import NpucError, UnsupportedError

from .checks import checked_kernel, normalize_axis


def _check_indices(idx: np.ndarray, dim, ctx) -> np.ndarray:
    """``idx`` with negative entries wrapped, after checking it is inside ``dim``."""
    idx = np.asarray(idx).astype(np.int64, copy=False)
    dim = np.asarray(dim, dtype=np.int64)
    bad = (idx < -dim) | (idx >= dim)
    if bad.any():
        raise NpucError(f"{ctx.describe()}: index {idx[bad].reshape(-1)[0]} is out of range "
                        f"for size {dim.tolist()}")
    return np.where(idx < 0, idx + dim, idx)


@checked_kernel("Gather")
def gather(inputs, attrs, ctx):
    """ONNX Gather."""
    data, indices = inputs
    axis = normalize_axis(attrs.get("axis", 0), data.ndim, ctx)
    if indices.ndim == 0 and indices.dtype.kind in "iu":  # a shape's entry: no arrays
        i, dim = int(indices), data.shape[axis]
        if not -dim <= i < dim:
            raise NpucError(f"{ctx.describe()}: index {i} is out of range for size {dim}")
        return [np.take(data, i + dim if i < 0 else i, axis=axis)]
    idx = _check_indices(indices, data.shape[axis], ctx)
    return [np.take(data, idx, axis=axis)]


@checked_kernel("GatherElements")
def gather_elements(inputs, attrs, ctx):
    """ONNX GatherElements."""
    data, indices = inputs
    axis = normalize_axis(attrs.get("axis", 0), data.ndim, ctx)
    if indices.ndim != data.ndim:
        raise NpucError(f"{ctx.describe()}: indices and data ranks differ")
    idx = _check_indices(indices, data.shape[axis], ctx)
    # Indices may be smaller than the data on the other axes: take the matching corner.
    corner = tuple(slice(None) if a == axis else slice(0, indices.shape[a])
                   for a in range(data.ndim))
    return [np.take_along_axis(data[corner], idx, axis=axis)]


def _nd_index(data_shape, indices: np.ndarray, ctx) -> tuple:
    k = indices.shape[-1]
    if k > len(data_shape):
        raise NpucError(f"{ctx.describe()}: index tuples of length {k} for rank "
                        f"{len(data_shape)} data")
    idx = _check_indices(indices, np.asarray(data_shape[:k], dtype=np.int64), ctx)
    return tuple(idx[..., j] for j in range(k))


@checked_kernel("GatherND")
def gather_nd(inputs, attrs, ctx):
    """ONNX GatherND with ``batch_dims``."""
    data, indices = inputs
    b = attrs.get("batch_dims", 0)
    batch = data.shape[:b]
    if indices.shape[:b] != batch:
        raise NpucError(f"{ctx.describe()}: batch dimensions of data and indices differ")
    nb = int(np.prod(batch))
    data2 = data.reshape((nb,) + data.shape[b:])
    idx2 = indices.reshape((nb, -1, indices.shape[-1]))
    where = _nd_index(data2.shape[1:], idx2, ctx)
    out = data2[(np.arange(nb)[:, None],) + where]
    k = indices.shape[-1]
    return [out.reshape(batch + indices.shape[b:-1] + data.shape[b + k:])]


_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_at(out: np.ndarray, where: tuple, updates: np.ndarray, reduction: str, ctx):
    if reduction == "none":
        out[where] = updates
        return out
    fn = _REDUCE.get(reduction)
    if fn is None:
        raise UnsupportedError(f"{ctx.describe()}: reduction {reduction!r} is not supported")
    fn.at(out, where, updates)
    return out


def _scatter_elements(inputs, attrs, ctx):
    data, indices, updates = inputs
    axis = normalize_axis(attrs.get("axis", 0), data.ndim, ctx)
    if indices.shape != updates.shape or indices.ndim != data.ndim:
        raise NpucError(f"{ctx.describe()}: indices {indices.shape} and updates "
                        f"{updates.shape} do not match data {data.shape}")
    idx = _check_indices(indices, data.shape[axis], ctx)
    where = list(np.indices(indices.shape, sparse=True))
    where[axis] = idx
    out = np.array(data, copy=True)
    return [_scatter_at(out, tuple(where), updates, attrs.get("reduction", "none"), ctx)]


checked_kernel("ScatterElements", "Scatter")(_scatter_elements)
_scatter_elements.__doc__ = "ONNX ScatterElements (and the older Scatter), with ``reduction``."


@checked_kernel("ScatterND")
def scatter_nd(inputs, attrs, ctx):
    """ONNX ScatterND with ``reduction``."""
    data, indices, updates = inputs
    k = indices.shape[-1]
    if updates.shape != indices.shape[:-1] + data.shape[k:]:
        raise NpucError(f"{ctx.describe()}: updates {updates.shape} do not match indices "
                        f"{indices.shape} and data {data.shape}")
    out = np.array(data, copy=True)
    return [_scatter_at(out, _nd_index(data.shape, indices, ctx), updates,
                        attrs.get("reduction", "none"), ctx)]


@checked_kernel("Compress")
def compress(inputs, attrs, ctx):
    """ONNX Compress (flattened input when no axis is given)."""
    x, cond = inputs
    cond = np.asarray(cond, dtype=bool).reshape(-1)
    axis = attrs.get("axis")
    if axis is None:
        x, axis = x.reshape(-1), 0
    else:
        axis = normalize_axis(axis, x.ndim, ctx)
    if cond.size > x.shape[axis]:
        cond = cond[: x.shape[axis]]
    return [np.compress(cond, x, axis=axis)]


@checked_kernel("NonZero")
def non_zero(inputs, attrs, ctx):
    """ONNX NonZero: one row per dimension, one column per nonzero element."""
    x = inputs[0]
    if x.ndim == 0:
        return [np.zeros((0, int(bool(x))), dtype=np.int64)]
    return [np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)]


@checked_kernel("OneHot")
def one_hot(inputs, attrs, ctx):
    """ONNX OneHot; out-of-range indices give a row of off values."""
    indices, depth, values = inputs
    depth = int(np.asarray(depth).reshape(-1)[0])
    values = np.asarray(values).reshape(-1)
    rank = indices.ndim + 1
    axis = normalize_axis(attrs.get("axis", -1), rank, ctx)
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)
    shape = [1] * rank
    shape[axis] = depth
    hot = np.expand_dims(idx, axis) == np.arange(depth).reshape(shape)
    return [np.where(hot, values[1], values[0]).astype(values.dtype)]


@checked_kernel("Trilu")
def trilu(inputs, attrs, ctx):
    """ONNX Trilu: keep the upper (default) or lower triangle of the last two axes."""
    x = inputs[0]
    k = int(np.asarray(inputs[1]).reshape(-1)[0]) if len(inputs) > 1 and inputs[1] is not None else 0
    if x.ndim < 2:
        raise NpucError(f"{ctx.describe()}: needs an input of rank 2 or more")
    return [np.triu(x, k) if attrs.get("upper", 1) else np.tril(x, k)]


@checked_kernel("ReverseSequence")
def reverse_sequence(inputs, attrs, ctx):
    """ONNX ReverseSequence: reverse the first ``sequence_lens[b]`` steps of each batch."""
    x, lens = inputs
    batch_axis = attrs.get("batch_axis", 1)
    time_axis = attrs.get("time_axis", 0)
    out = np.array(x, copy=True)
    for b, n in enumerate(np.asarray(lens).reshape(-1)):
        n = int(n)
        if not 0 <= n <= x.shape[time_axis]:
            raise NpucError(f"{ctx.describe()}: sequence length {n} is out of range")
        src = [slice(None)] * x.ndim
        src[batch_axis] = b
        src[time_axis] = slice(0, n)
        out[tuple(src)] = np.flip(x[tuple(src)], axis=time_axis - (batch_axis < time_axis))
    return [out]


@checked_kernel("TensorScatter")
def tensor_scatter(inputs, attrs, ctx):
    """ONNX TensorScatter: write ``update`` into a cache along ``axis`` at each batch's index."""
    past, update = inputs[0], inputs[1]
    write = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    axis = normalize_axis(attrs.get("axis", -2), past.ndim, ctx)
    if axis == 0:
        raise NpucError(f"{ctx.describe()}: axis cannot be the batch axis")
    circular = attrs.get("mode", "linear") == "circular"
    max_len, seq_len = past.shape[axis], update.shape[axis]
    out = np.array(past, copy=True)
    for b in range(past.shape[0]):
        start = 0 if write is None else int(write.reshape(-1)[b])
        pos = start + np.arange(seq_len)
        if circular:
            pos %= max_len
        elif seq_len and (start < 0 or pos[-1] >= max_len):
            raise NpucError(f"{ctx.describe()}: write index {start} overflows the cache")
        out[b][(slice(None),) * (axis - 1) + (pos,)] = update[b]
    return [out]

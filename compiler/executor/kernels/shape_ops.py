"""Operators that move data without computing on it: reshapes, transposes, slices, pads.

Most return views of their input (the interpreter never writes into an array it was
given). Where an attribute became an input in a later opset (Reshape's shape, Squeeze's
axes, Split's split, Slice's starts/ends/axes/steps, Pad's pads and value), both forms are
accepted according to ``ctx.opset``.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np

from npuc.ir.errors import NpucError, UnsupportedError
from npuc.ir.limits import check_shape

from .checks import checked_kernel, input_or_attr, normalize_axes, normalize_axis


@checked_kernel("Reshape")
def reshape(inputs, attrs, ctx):
    """ONNX Reshape: 0 copies the input dimension (unless ``allowzero``), -1 is inferred."""
    x = inputs[0]
    shape = input_or_attr(inputs, 1, attrs, "shape", ctx, since=5)
    allowzero = attrs.get("allowzero", 0)
    out = []
    for i, d in enumerate(shape):
        if d == 0 and not allowzero:
            if i >= x.ndim:
                raise NpucError(f"{ctx.describe()}: shape {shape} copies dimension {i} "
                                f"of a rank-{x.ndim} input")
            d = x.shape[i]
        out.append(d)
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise NpucError(f"{ctx.describe()}: invalid target shape {shape}")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or x.size % known:
            raise NpucError(f"{ctx.describe()}: cannot reshape {x.shape} to {shape}")
        out[out.index(-1)] = x.size // known
    if math.prod(out) != x.size:
        raise NpucError(f"{ctx.describe()}: cannot reshape {x.shape} to {shape}")
    return [x.reshape(out)]


@checked_kernel("Transpose")
def transpose(inputs, attrs, ctx):
    """ONNX Transpose; without ``perm`` the axes are reversed."""
    x = inputs[0]
    perm = attrs.get("perm")
    if perm is None:
        return [x.transpose()]
    if sorted(normalize_axes(perm, x.ndim, ctx)) != list(range(x.ndim)):
        raise NpucError(f"{ctx.describe()}: perm {perm} is not a permutation of {x.ndim} axes")
    return [x.transpose(perm)]


@checked_kernel("Flatten")
def flatten(inputs, attrs, ctx):
    """ONNX Flatten to 2-D around ``axis``."""
    x = inputs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    if not 0 <= axis <= x.ndim:
        raise NpucError(f"{ctx.describe()}: axis {attrs.get('axis')} is out of range")
    rows = int(np.prod(x.shape[:axis]))
    return [x.reshape(rows, int(np.prod(x.shape[axis:])))]


@checked_kernel("Squeeze")
def squeeze(inputs, attrs, ctx):
    """ONNX Squeeze; without axes every dimension of size 1 goes."""
    x = inputs[0]
    axes = input_or_attr(inputs, 1, attrs, "axes", ctx, since=13)
    if axes is None:
        return [x.reshape([d for d in x.shape if d != 1])]
    axes = normalize_axes(axes, x.ndim, ctx)
    for a in axes:
        if x.shape[a] != 1:
            raise NpucError(f"{ctx.describe()}: cannot squeeze axis {a} of size {x.shape[a]}")
    return [x.reshape([d for i, d in enumerate(x.shape) if i not in axes])]


@checked_kernel("Unsqueeze")
def unsqueeze(inputs, attrs, ctx):
    """ONNX Unsqueeze; axes refer to the output's dimensions."""
    x = inputs[0]
    axes = input_or_attr(inputs, 1, attrs, "axes", ctx, since=13) or []
    rank = x.ndim + len(axes)
    axes = normalize_axes(axes, rank, ctx)
    shape = iter(x.shape)
    return [x.reshape([1 if i in axes else next(shape) for i in range(rank)])]


@checked_kernel("Concat")
def concat(inputs, attrs, ctx):
    """ONNX Concat."""
    xs = [x for x in inputs if x is not None]
    axis = normalize_axis(attrs.get("axis", 1), xs[0].ndim, ctx)
    try:
        return [np.concatenate(xs, axis=axis)]
    except ValueError as e:
        shapes = [x.shape for x in xs]
        raise NpucError(f"{ctx.describe()}: cannot concatenate {shapes} on axis {axis}") from e


def split_sizes(dim: int, split, count: int, ctx) -> list[int]:
    """Chunk sizes of a Split: explicit, or ``count`` chunks (the last may be smaller)."""
    if split is not None:
        if sum(split) != dim or any(s < 0 for s in split):
            raise NpucError(f"{ctx.describe()}: split {split} does not sum to {dim}")
        return list(split)
    if count <= 0:
        raise NpucError(f"{ctx.describe()}: cannot split into {count} parts")
    chunk = -(-dim // count)
    return [min(chunk, max(dim - i * chunk, 0)) for i in range(count)]


@checked_kernel("Split")
def split(inputs, attrs, ctx):
    """ONNX Split into ``split`` sizes, or into equal parts (opset 18: the last smaller)."""
    x = inputs[0]
    axis = normalize_axis(attrs.get("axis", 0), x.ndim, ctx)
    # Opset 1 accepted the sizes as an attribute or an input, 2 to 12 as an attribute.
    from_input = ctx.opset >= 13 or (ctx.opset < 2 and len(inputs) > 1 and inputs[1] is not None)
    sizes = input_or_attr(inputs, 1, attrs, "split", ctx, since=1 if from_input else 99)
    count = attrs.get("num_outputs", ctx.num_outputs)
    if sizes is None and ctx.opset < 18 and x.shape[axis] % count:
        raise NpucError(f"{ctx.describe()}: dimension {x.shape[axis]} does not split "
                        f"into {count} equal parts")
    sizes = split_sizes(x.shape[axis], sizes, count, ctx)
    bounds = np.cumsum([0] + sizes)
    index = [slice(None)] * x.ndim
    out = []
    for lo, hi in pairwise(bounds):
        index[axis] = slice(int(lo), int(hi))
        out.append(x[tuple(index)])
    return out


def _slice_index(dim: int, start: int, end: int, step: int) -> slice:
    """A Python slice with the ONNX clamping rules."""
    if step > 0:
        start = max(0, min(dim, start + dim if start < 0 else start))
        end = max(0, min(dim, end + dim if end < 0 else end))
        return slice(start, end, step)
    start = max(0, min(dim - 1, start + dim if start < 0 else start))
    end = max(-1, min(dim - 1, end + dim if end < 0 else end))
    return slice(start, None if end < 0 else end, step)


@checked_kernel("Slice")
def slice_(inputs, attrs, ctx):
    """ONNX Slice (attributes before opset 10, inputs from 10 on)."""
    x = inputs[0]
    if ctx.opset < 10:
        starts, ends, axes, steps = (attrs.get("starts"), attrs.get("ends"),
                                     attrs.get("axes"), None)
    else:
        get = lambda i: (None if len(inputs) <= i or inputs[i] is None
                         else [int(v) for v in inputs[i].reshape(-1)])
        starts, ends, axes, steps = get(1), get(2), get(3), get(4)
    if len(starts) != len(ends):
        raise NpucError(f"{ctx.describe()}: starts and ends differ in length")
    axes = list(range(len(starts))) if axes is None else normalize_axes(axes, x.ndim, ctx)
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        if st == 0:
            raise NpucError(f"{ctx.describe()}: slice step cannot be 0")
        index[a] = _slice_index(x.shape[a], s, e, st)
    return [x[tuple(index)]]


@checked_kernel("Expand")
def expand(inputs, attrs, ctx):
    """ONNX Expand (bidirectional broadcasting; a read-only view)."""
    x, shape = inputs
    try:
        out = np.broadcast_shapes(x.shape, tuple(int(d) for d in shape.reshape(-1)))
    except ValueError as e:
        raise NpucError(f"{ctx.describe()}: cannot expand {x.shape} to {shape.tolist()}") from e
    check_shape(out, x.dtype.itemsize, ctx.describe())
    return [np.broadcast_to(x, out)]


@checked_kernel("Shape")
def shape(inputs, attrs, ctx):
    """ONNX Shape, with ``start``/``end`` (opset 15)."""
    dims = inputs[0].shape
    rank = len(dims)
    start, end = attrs.get("start", 0), attrs.get("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return [np.array(dims[start:end], dtype=np.int64)]


@checked_kernel("Size")
def size(inputs, attrs, ctx):
    """ONNX Size."""
    return [np.array(inputs[0].size, dtype=np.int64)]


@checked_kernel("Tile")
def tile(inputs, attrs, ctx):
    """ONNX Tile."""
    x, repeats = inputs
    repeats = [int(r) for r in repeats.reshape(-1)]
    if len(repeats) != x.ndim or any(r < 0 for r in repeats):
        raise NpucError(f"{ctx.describe()}: repeats {repeats} do not fit rank {x.ndim}")
    check_shape([d * r for d, r in zip(x.shape, repeats)], x.dtype.itemsize, ctx.describe())
    return [np.tile(x, repeats)]


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def pad_array(x: np.ndarray, pads: list[int], axes: list[int], mode: str, value, ctx):
    """Pad (negative pads crop) ``x`` along ``axes``; pads are [begins..., ends...]."""
    n = len(axes)
    if len(pads) != 2 * n:
        raise NpucError(f"{ctx.describe()}: {len(pads)} pads for {n} axes")
    widths = [(0, 0)] * x.ndim
    crop = [slice(None)] * x.ndim
    for i, a in enumerate(axes):
        b, e = pads[i], pads[i + n]
        widths[a] = (max(b, 0), max(e, 0))
        crop[a] = slice(max(-b, 0), x.shape[a] - max(-e, 0))
    x = x[tuple(crop)]
    if mode not in _PAD_MODES:
        raise UnsupportedError(f"{ctx.describe()}: pad mode {mode!r} is not supported")
    if mode != "constant" and any(w != (0, 0) and x.shape[a] == 0 for a, w in enumerate(widths)):
        raise NpucError(f"{ctx.describe()}: cannot {mode}-pad an empty dimension")
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=value)
    return np.pad(x, widths, mode=_PAD_MODES[mode])


@checked_kernel("Pad")
def pad(inputs, attrs, ctx):
    """ONNX Pad (constant, reflect, edge, wrap; ``axes`` from opset 18)."""
    x = inputs[0]
    mode = attrs.get("mode", "constant")
    if ctx.opset < 11:
        pads = list(attrs.get("pads", attrs.get("paddings", [])))
        value = attrs.get("value", 0.0)
        axes = None
    else:
        pads = [int(p) for p in inputs[1].reshape(-1)]
        v = inputs[2] if len(inputs) > 2 else None
        value = 0 if v is None or v.size == 0 else v.reshape(-1)[0]
        axes = inputs[3] if len(inputs) > 3 else None
    axes = list(range(x.ndim)) if axes is None else normalize_axes(
        [int(a) for a in np.asarray(axes).reshape(-1)], x.ndim, ctx)
    if x.dtype == object:
        value = "" if value == 0 else value
    else:
        value = np.asarray(value).astype(x.dtype)
    return [pad_array(x, pads, axes, mode, value, ctx)]

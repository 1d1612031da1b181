"""Sequence and optional operators.

A sequence is a Python list of arrays; an empty optional is ``None`` and a full one is
its value. Sequence operators never modify the list they are given: they build a new one.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from npuc.ir.dtypes import dtype as npuc_dtype
from npuc.ir.errors import NpucError

from .checks import checked_kernel, normalize_axis
from .shape_ops import split_sizes


def _position(pos, length: int, ctx, insert: bool = False) -> int:
    """A sequence position in ``[0, length)`` (``[0, length]`` when inserting)."""
    p = int(np.asarray(pos).reshape(-1)[0])
    hi = length + 1 if insert else length
    if not -length <= p < hi:
        raise NpucError(f"{ctx.describe()}: position {p} is out of range for a sequence "
                        f"of {length}")
    return p + length if p < 0 else p


def _sequence(value, ctx) -> list:
    if not isinstance(value, list):
        raise NpucError(f"{ctx.describe()}: expected a sequence, got {type(value).__name__}")
    return value


@checked_kernel("SequenceEmpty")
def sequence_empty(inputs, attrs, ctx):
    """ONNX SequenceEmpty (the element type only matters to type inference)."""
    if "dtype" in attrs:
        npuc_dtype(int(attrs["dtype"]))
    return [[]]


@checked_kernel("SequenceConstruct")
def sequence_construct(inputs, attrs, ctx):
    """ONNX SequenceConstruct."""
    return [list(inputs)]


@checked_kernel("SequenceInsert")
def sequence_insert(inputs, attrs, ctx):
    """ONNX SequenceInsert at ``position`` (the end by default)."""
    seq = list(_sequence(inputs[0], ctx))
    pos = inputs[2] if len(inputs) > 2 else None
    p = len(seq) if pos is None else _position(pos, len(seq), ctx, insert=True)
    seq.insert(p, inputs[1])
    return [seq]


@checked_kernel("SequenceAt")
def sequence_at(inputs, attrs, ctx):
    """ONNX SequenceAt."""
    seq = _sequence(inputs[0], ctx)
    return [seq[_position(inputs[1], len(seq), ctx)]]


@checked_kernel("SequenceErase")
def sequence_erase(inputs, attrs, ctx):
    """ONNX SequenceErase at ``position`` (the last element by default)."""
    seq = list(_sequence(inputs[0], ctx))
    if not seq:
        raise NpucError(f"{ctx.describe()}: cannot erase from an empty sequence")
    pos = inputs[1] if len(inputs) > 1 else None
    del seq[-1 if pos is None else _position(pos, len(seq), ctx)]
    return [seq]


@checked_kernel("SequenceLength")
def sequence_length(inputs, attrs, ctx):
    """ONNX SequenceLength."""
    return [np.array(len(_sequence(inputs[0], ctx)), dtype=np.int64)]


@checked_kernel("SplitToSequence")
def split_to_sequence(inputs, attrs, ctx):
    """ONNX SplitToSequence: by sizes, by a chunk length, or into single slices."""
    x = inputs[0]
    split = inputs[1] if len(inputs) > 1 else None
    axis = normalize_axis(attrs.get("axis", 0), x.ndim, ctx)
    dim = x.shape[axis]
    if split is None:
        parts = np.split(x, dim, axis=axis) if dim else []
        if not attrs.get("keepdims", 1):
            parts = [np.squeeze(p, axis=axis) for p in parts]
        return [parts]
    split = np.asarray(split)
    if split.ndim == 0:
        chunk = int(split)
        if chunk <= 0:
            raise NpucError(f"{ctx.describe()}: split length must be positive, got {chunk}")
        sizes = split_sizes(dim, None, -(-dim // chunk), ctx)
    else:
        sizes = split_sizes(dim, [int(s) for s in split], 0, ctx)
    bounds = np.cumsum([0] + sizes)
    return [[np.take(x, np.arange(lo, hi), axis=axis) for lo, hi in pairwise(bounds)]]


@checked_kernel("ConcatFromSequence")
def concat_from_sequence(inputs, attrs, ctx):
    """ONNX ConcatFromSequence (``new_axis=1`` stacks)."""
    seq = _sequence(inputs[0], ctx)
    if not seq:
        raise NpucError(f"{ctx.describe()}: cannot concatenate an empty sequence")
    axis = attrs["axis"]
    try:
        if attrs.get("new_axis", 0):
            return [np.stack(seq, axis=normalize_axis(axis, seq[0].ndim + 1, ctx))]
        return [np.concatenate(seq, axis=normalize_axis(axis, seq[0].ndim, ctx))]
    except ValueError as e:
        raise NpucError(f"{ctx.describe()}: sequence elements do not concatenate: {e}") from e


@checked_kernel("Optional")
def optional(inputs, attrs, ctx):
    """ONNX Optional: the input wrapped, or an empty optional (None) when there is none."""
    return [inputs[0] if inputs else None]


@checked_kernel("OptionalHasElement")
def optional_has_element(inputs, attrs, ctx):
    """ONNX OptionalHasElement (a missing input counts as empty)."""
    value = inputs[0] if inputs else None
    return [np.array(value is not None)]


@checked_kernel("OptionalGetElement")
def optional_get_element(inputs, attrs, ctx):
    """ONNX OptionalGetElement; an empty optional is an error."""
    if not inputs or inputs[0] is None:
        raise NpucError(f"{ctx.describe()}: the optional is empty")
    return [inputs[0]]

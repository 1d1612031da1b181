"""Model inputs: read from .npz files, or generated for a graph's signature."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from npuc.ir.errors import InputError
from npuc.ir.graph import Graph
from npuc.ir.types import TensorType


def load_inputs(path: str) -> dict[str, np.ndarray]:
    """Named arrays from an ``.npz`` file (pickled objects refused)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz file ({e})") from None


def random_inputs(graph: Graph, seed: int = 0, dims: dict[str, int] | None = None
                  ) -> dict[str, np.ndarray]:
    """Inputs of the right names, dtypes and shapes; symbolic dimensions default to 1.

    Integer inputs get small non-negative values, below the size of any table they index
    (token ids into an embedding, token types into a table of two); masks get 0 and 1.
    """
    rng = np.random.default_rng(seed)
    dims = dict(dims or {})
    out = {}
    for v in graph.inputs:
        t = v.type
        if not isinstance(t, TensorType) or t.shape is None:
            raise InputError(f"input '{v.name}' has no known shape; give --inputs")
        shape = tuple(d if isinstance(d, int) and d >= 0 else dims.setdefault(d, 1)
                      if isinstance(d, str) else 1 for d in t.shape)
        dt = t.dtype
        if dt.is_float:
            arr = rng.standard_normal(shape).astype(dt.numpy)
        elif dt.kind == "bool":
            arr = rng.random(shape) < 0.5
        elif dt.is_integer:
            high = 2 if "mask" in v.name else min(100, index_bound(v) or 100)
            arr = rng.integers(0, high, size=shape).astype(dt.numpy)
        else:
            raise InputError(f"input '{v.name}' of type {t} cannot be generated; give --inputs")
        out[v.name] = arr
    return out


# Operators through which an index keeps its meaning on its way to a Gather.
_PASS_THROUGH = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast", "Identity", "Expand",
                 "Slice", "Transpose", "Concat"}


def index_bound(value, depth: int = 6) -> int | None:
    """The smallest table size ``value`` indexes (through a Gather), or None."""
    bound = None
    for node, i in value.uses:
        found = None
        if node.op_type == "Gather" and i == 1:
            data = node.inputs[0].type
            if isinstance(data, TensorType) and data.shape is not None:
                axis = node.attrs.get("axis", 0) % len(data.shape)
                size = data.shape[axis]
                found = size if isinstance(size, int) else None
        elif node.op_type in _PASS_THROUGH and i == 0 and depth > 0:
            found = index_bound(node.outputs[0], depth - 1) if node.outputs else None
        if found is not None:
            bound = found if bound is None else min(bound, found)
    return bound

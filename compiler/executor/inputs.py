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

    Integer inputs get small non-negative values (valid as indices into most tables);
    a model whose integer inputs index something larger may need real data.
    """
    rng = np.random.default_rng(seed)
    dims = dict(dims or {})
    out = {}
    for v in graph.inputs:
        t = v.type
        if not isinstance(t, TensorType) or t.shape is None:
            raise InputError(f"input '{v.name}' has no known shape; give --inputs")
        shape = tuple(d if isinstance(d, int) else dims.setdefault(d, 1) if isinstance(d, str)
                      else 1 for d in t.shape)
        dt = t.dtype
        if dt.is_float:
            arr = rng.standard_normal(shape).astype(dt.numpy)
        elif dt.kind == "bool":
            arr = rng.random(shape) < 0.5
        elif dt.is_integer:
            arr = rng.integers(0, 2, size=shape).astype(dt.numpy) if "mask" in v.name \
                else rng.integers(0, 100, size=shape).astype(dt.numpy)
        else:
            raise InputError(f"input '{v.name}' of type {t} cannot be generated; give --inputs")
        out[v.name] = arr
    return out

"""Model inputs: read from .npz files, or generated for a graph's signature."""

from __future__ import annotations

import zipfile

import numpy as np

from npuc.ir.errors import InputError
from npuc.ir.graph import Graph
from npuc.ir.limits import TENSOR_ENV, SizeError, check_shape, human, max_tensor_bytes
from npuc.ir.safeio import check_input_file
from npuc.ir.types import TensorType

MAX_RANDOM_SAMPLES = 10_000
_READ_ERRORS = (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError, TypeError,
                SyntaxError, NotImplementedError)


def _check_header(f, what: str) -> None:
    """Read an .npy header from ``f`` and refuse what the size guard or pickles forbid."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(f)
    else:
        shape, _, dtype = fmt._read_array_header(f, version)
    if dtype.hasobject:
        raise InputError(f"{what}: holds Python objects (a pickle), which npuc does not load")
    check_shape(shape, dtype.itemsize, what)


def load_inputs(path: str) -> dict[str, np.ndarray]:
    """Named arrays from an ``.npz`` file (pickled objects refused; every array's declared
    shape checked against the size guard before it is read)."""
    if not path:
        raise InputError("an empty file name was given for inputs")
    check_input_file(path)
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.filename.endswith(".npy"):
                    with z.open(info) as f:
                        _check_header(f, f"{path}: array '{info.filename[:-4]}'")
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except SizeError:
        raise
    except InputError:
        raise
    except _READ_ERRORS as e:
        raise InputError(f"{path}: not a readable .npz file ({_reason(e)})") from None


def load_npy(path: str) -> np.ndarray:
    """One array from an ``.npy`` file, checked like :func:`load_inputs`."""
    check_input_file(path)
    try:
        with open(path, "rb") as f:
            _check_header(f, path)
        return np.load(path, allow_pickle=False)
    except (SizeError, InputError):
        raise
    except _READ_ERRORS as e:
        raise InputError(f"{path}: not a readable .npy file ({_reason(e)})") from None


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


def random_count(spec: str, graph: Graph) -> int:
    """N of ``random:N``: between 1 and :data:`MAX_RANDOM_SAMPLES`, and N input sets
    within the size guard."""
    try:
        n = int(spec[7:])
    except ValueError:
        raise InputError(f"--calibration {spec}: N in random:N must be a whole number") \
            from None
    if not 1 <= n <= MAX_RANDOM_SAMPLES:
        raise InputError(f"--calibration {spec}: N in random:N must be between 1 and "
                         f"{MAX_RANDOM_SAMPLES}; give real data for more")
    check_sets(n, graph, f"--calibration {spec}")
    return n


def check_sets(n: int, graph: Graph, what: str) -> None:
    """Refuse ``n`` random input sets for ``graph`` that together pass the size guard."""
    per_set = sum(_input_bytes(v) for v in graph.inputs)
    if n * per_set > max_tensor_bytes():
        raise SizeError(f"{what}: {n} input sets of {human(per_set)} each take "
                        f"{human(n * per_set)} at once, above the limit of "
                        f"{human(max_tensor_bytes())} (raise it with --max-tensor-bytes or "
                        f"{TENSOR_ENV})")


def _input_bytes(v) -> int:
    t = v.type
    if not isinstance(t, TensorType) or t.shape is None:
        return 0
    shape = [d if isinstance(d, int) else 1 for d in t.shape]
    return check_shape(shape, max(t.dtype.bits // 8, 1), f"input '{v.name}'")


def random_inputs(graph: Graph, seed: int = 0, dims: dict[str, int] | None = None,
                  rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """Inputs of the right names, dtypes and shapes; symbolic dimensions default to 1.

    Integer inputs get small non-negative values, below the size of any table they index
    (token ids into an embedding, token types into a table of two); masks get 0 and 1.
    ``rng``, when given, is drawn from instead of a generator seeded with ``seed`` (so
    that successive calls give different sets).
    """
    rng = np.random.default_rng(seed) if rng is None else rng
    dims = dict(dims or {})
    out = {}
    for v in graph.inputs:
        t = v.type
        if not isinstance(t, TensorType) or t.shape is None:
            raise InputError(f"input '{v.name}' has no known shape; give --inputs")
        shape = tuple(d if isinstance(d, int) and d >= 0 else dims.setdefault(d, 1)
                      if isinstance(d, str) else 1 for d in t.shape)
        check_shape(shape, max(t.dtype.bits // 8, 1), f"input '{v.name}'")
        high = 2 if "mask" in v.name else min(100, index_bound(v) or 100)
        arr = random_array(rng, shape, t.dtype, high)
        if arr is None:
            raise InputError(f"input '{v.name}' of type {t} cannot be generated; give --inputs")
        out[v.name] = arr
    return out


def random_array(rng: np.random.Generator, shape: tuple, dt, high: int = 100):
    """One random input of element type ``dt`` (an IR DType): floats ~ N(0, 1), booleans
    fair, integers in ``[0, high)``; None for a type that cannot be generated."""
    if dt.is_float:
        return rng.standard_normal(shape).astype(dt.numpy)
    if dt.kind == "bool":
        return rng.random(shape) < 0.5
    if dt.is_integer:
        return rng.integers(0, high, size=shape).astype(dt.numpy)
    return None


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

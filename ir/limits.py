"""The one size guard: how large a tensor npuc agrees to make, and how long a Loop may run.

A tiny model can ask for a huge tensor (ConstantOfShape of [2**32], Range to 2**40, Tile
by [2**30, 2**30]) or a loop that never ends. Every place that makes a tensor from a
shape it was given (shape inference, constant folding, the kernels that build tensors
from data, random inputs, calibration, reading .npz/.npy files) asks :func:`check_shape`
first, and is refused with :class:`SizeError` (exit 2) naming what and how large.

Limits (documented in docs/cli.md):

- bytes per tensor: ``--max-tensor-bytes N`` or ``NPUC_MAX_TENSOR_BYTES`` (default 4 GiB);
- Loop iterations: ``--max-loop-iterations N`` or ``NPUC_MAX_LOOP_ITERATIONS``
  (default 10,000).

Both accept a plain number or one with a K, M, G or T suffix (powers of 1024 for bytes).
"""

from __future__ import annotations

import math
import os

from .errors import NpucError

DEFAULT_MAX_TENSOR_BYTES = 4 << 30
DEFAULT_MAX_LOOP_ITERATIONS = 10_000
TENSOR_ENV = "NPUC_MAX_TENSOR_BYTES"
LOOP_ENV = "NPUC_MAX_LOOP_ITERATIONS"
_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_overrides: dict[str, int] = {}


class SizeError(NpucError):
    """A tensor, a file or a loop beyond npuc's limits."""


def parse_size(text: str, what: str) -> int:
    """``"4G"`` -> 4294967296; a positive integer, else an NpucError naming ``what``."""
    t = str(text).strip().lower().removesuffix("ib").removesuffix("b")
    scale = _SUFFIX.get(t[-1:], 1)
    digits = t[:-1] if t[-1:] in _SUFFIX else t
    try:
        n = float(digits) * scale
    except ValueError:
        n = float("nan")
    if not math.isfinite(n) or n < 1 or n != int(n):
        raise NpucError(f"{what} must be a positive whole number (like 4G), not {text!r}")
    return int(n)


def _limit(key: str, env: str, default: int) -> int:
    if key in _overrides:
        return _overrides[key]
    text = os.environ.get(env)
    return parse_size(text, env) if text else default


def max_tensor_bytes() -> int:
    """The largest tensor, in bytes, npuc makes."""
    return _limit("tensor", TENSOR_ENV, DEFAULT_MAX_TENSOR_BYTES)


def max_loop_iterations() -> int:
    """The most iterations one Loop node runs."""
    return _limit("loop", LOOP_ENV, DEFAULT_MAX_LOOP_ITERATIONS)


def set_limits(tensor_bytes: int | None = None, loop_iterations: int | None = None) -> None:
    """Override the limits for this process (the command-line flags)."""
    if tensor_bytes is not None:
        _overrides["tensor"] = int(tensor_bytes)
    if loop_iterations is not None:
        _overrides["loop"] = int(loop_iterations)


def reset_limits() -> None:
    """Back to the environment's limits or the defaults."""
    _overrides.clear()


def human(n: int) -> str:
    """``4294967296`` -> ``"4 GiB"``."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def check_shape(shape, itemsize: int, what: str) -> int:
    """Refuse a tensor of ``shape`` (integers) and ``itemsize`` bytes per element beyond the
    limit; return its size in bytes. ``what`` names it (a node, an input, a file)."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise SizeError(f"{what}: negative dimension in shape {dims}")
    nbytes = math.prod(dims) * max(int(itemsize), 1)
    limit = max_tensor_bytes()
    if nbytes > limit:
        raise SizeError(f"{what}: a tensor of shape {dims} would take {human(nbytes)}, above "
                        f"the limit of {human(limit)} per tensor (raise it with "
                        f"--max-tensor-bytes or {TENSOR_ENV})")
    return nbytes


def check_type(t, what: str) -> None:
    """:func:`check_shape` for a TensorType whose shape is fully known (else nothing)."""
    shape = getattr(t, "shape", None)
    dtype = getattr(t, "dtype", None)
    if shape is None or dtype is None or not all(isinstance(d, int) for d in shape):
        return
    check_shape(shape, max(getattr(dtype, "bits", 8) // 8, 1), what)


def check_iterations(count: int, what: str) -> None:
    """Refuse a loop about to run its ``count``-th iteration beyond the limit."""
    limit = max_loop_iterations()
    if count > limit:
        raise SizeError(f"{what}: the loop runs more than {limit} iterations (raise the limit "
                        f"with --max-loop-iterations or {LOOP_ENV})")

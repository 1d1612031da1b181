"""Weights stored at the precision the program computes in.

A program compiled for bf16 or fp16 computes its matrix products on weights the quantizer
has already rounded to that format; they are float32 in the graph (the executor computes
in float32) but every value is exactly a bf16 (fp16) number. Such a constant is stored in
the weight blob, loaded into SRAM and moved over DRAM at 2 bytes per element: the chip's
layout, half the bytes. Nothing is lost: widening it back gives the same float32 values,
which is what the simulator does when a kernel reads it, so the program stays
bit-identical to the IR. A constant that is not exact in the format (a norm's scale the
quantizer left alone) keeps its own type.

:func:`mark_storage` records the format in ``value.meta["stored"]``; :func:`stored_dtype`
and :func:`stored_array` read it.
"""

from __future__ import annotations

import weakref

import ml_dtypes
import numpy as np

from npuc.compiler.bf16_bits import exact_bf16, exact_fp16, high_halves
from npuc.ir.dtypes import dtype as ir_dtype
from npuc.targets.precision import IR_DTYPE, numpy_dtype

# The float formats a float32 constant may be stored in when exact: (IR name, numpy type).
FORMATS = {p: (IR_DTYPE[p], numpy_dtype(p)) for p in ("bf16", "fp16")}
CHUNK = 1 << 22  # elements checked at a time, so a large table is not copied whole


def _exact(array: np.ndarray, narrow) -> bool:
    """Every value of float32 ``array`` is a ``narrow`` number; read piece by piece (a hole
    of a sparse file is zeros, exact), each piece's pages given back after it."""
    from npuc.compiler.mapped import is_hole, release, row_pieces

    for lo, hi in row_pieces(array):
        piece = array if array.ndim == 0 else array[lo:hi]
        if not is_hole(piece):
            ok = _exact_piece(piece, narrow)
            release(piece)
            if not ok:
                return False
    return True


def _exact_piece(array: np.ndarray, narrow) -> bool:
    flat = array.reshape(-1)
    if np.dtype(narrow) == np.dtype(ml_dtypes.bfloat16):  # exact: the low 16 bits are zero
        return exact_bf16(flat)
    if np.dtype(narrow) == np.dtype(np.float16):
        return exact_fp16(flat)
    with np.errstate(over="ignore"):
        for lo in range(0, flat.size, CHUNK):
            part = flat[lo:lo + CHUNK]
            if not np.array_equal(part.astype(narrow).astype(part.dtype), part,
                                  equal_nan=True):
                return False
    return True


def exact_in(array: np.ndarray, precision: str) -> bool:
    """True when every value of float32 ``array`` is a number of ``precision`` (bf16 or
    fp16)."""
    return _exact(array, FORMATS[precision][1])


# Read-only float32 arrays known to be exact in a format (the quantizer just rounded them
# to it), by id: ``(weak reference, narrow dtype)``. mark_storage then need not read them
# again (BERT-base: 440 MB of weights, a sixth of a second).
_known: dict[int, tuple] = {}


def note_exact(array: np.ndarray, precision: str) -> None:
    """Record that float32 ``array`` holds only numbers of ``precision`` (bf16, fp16), so
    that :func:`mark_storage` takes it as exact without reading it. Only an array whose
    values cannot change is recorded: read-only, with no writeable array beneath it."""
    if not isinstance(array, np.ndarray) or array.dtype != np.float32:
        return
    base = array
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return
        base = base.base
    key = id(array)
    _known[key] = (weakref.ref(array, lambda _ref, key=key: _known.pop(key, None)),
                   np.dtype(FORMATS[precision][1]))


def _known_exact(array: np.ndarray, narrow) -> bool:
    entry = _known.get(id(array))
    return entry is not None and entry[0]() is array and entry[1] == np.dtype(narrow)


def mark_storage(graph, precision: str, half: str | None = None) -> int:
    """Mark the float32 constants that are exact at ``precision`` (bf16, fp16) to be stored
    in it; returns the bytes saved. At fp8, ``half`` (the chip's 16-bit format) is the
    format tried: the tables the quantizer rounded to it (an embedding) are stored in it."""
    fmt = FORMATS.get(precision) or (FORMATS.get(half) if precision == "fp8" else None)
    saved = 0
    for v in graph.constants.values():
        v.meta.pop("stored", None)
        if fmt is None or v.const is None or v.const.dtype != np.float32 or v.const.size < 2:
            continue
        if _known_exact(v.const, fmt[1]) or _exact(v.const, fmt[1]):
            v.meta["stored"] = fmt[0]
            saved += v.const.nbytes // 2
    return saved


def stored_dtype(value):
    """The IR dtype ``value`` is stored in (its own unless marked: a constant, or a KV
    cache every reader of which rounds to that format, see
    :func:`npuc.compiler.schedule.kvcache.mark_cache_storage`)."""
    name = value.meta.get("stored")
    return ir_dtype(name) if name else value.type.dtype


def stored_array(value) -> np.ndarray:
    """The constant's data in the format it is stored in."""
    return stored_form(value, value.const)


def stored_form(value, array: np.ndarray, scratch: dict | None = None) -> np.ndarray:
    """``array`` (the constant's data, or a run of it) in the format ``value`` is stored in.
    ``scratch``: a dict whose buffer the result may be made in (valid until the next call
    with it) instead of new memory."""
    name = value.meta.get("stored")
    if not name:
        return array
    if name == "bf16":  # exact: the high half of each float32 is the bf16 number
        out = None
        if scratch is not None:
            buf = scratch.get("buffer")
            if buf is None or buf.size < np.size(array):
                buf = scratch["buffer"] = np.empty(np.size(array), np.uint16)
            out = buf[:np.size(array)]
        return high_halves(array, out).view(ml_dtypes.bfloat16).reshape(np.shape(array))
    return array.astype(ir_dtype(name).numpy)

"""bf16 (and fp16) numbers held in float32 bits: rounding, exactness and the stored half.

A weight rounded to bf16 stays float32 in the graph; its low 16 bits are zero and its
high 16 bits are the bf16 number. Rounding a model's weights, checking that they are
exact and taking their high halves for the weight blob are each a pass over every weight
byte: gigabytes for a decoder.

Each runs two ways that give the same bits: numpy over runs of :data:`STEP` elements (the
temporaries stay in the cache, and an exactness check stops at the first inexact run),
and compiled loops (:mod:`.bf16_loops`), integer arithmetic on the bits that reads each
element once. The loops cost a process that has not used Numba one to two seconds (its
import and first call), more than numpy spends on a model of hundreds of megabytes: a
process takes the numpy form until it has passed :data:`COMPILED_AFTER` elements through
it, then the loops.
"""

from __future__ import annotations

import sys

import ml_dtypes
import numpy as np

STEP = 1 << 16  # elements per numpy run: 256 KB of float32, in the cache
COMPILED_AFTER = 1 << 30  # elements (4 GB of float32) before the compiled loops pay
_passed = 0  # elements this process has passed through the numpy form


def _loops():
    """The compiled loops, once this process has passed enough elements through the
    numpy form to repay loading them; else None."""
    if _passed >= COMPILED_AFTER:
        from npuc.compiler import bf16_loops

        return bf16_loops
    return None


def _count(n: int) -> None:
    global _passed
    _passed += n


def _runs(n: int):
    for lo in range(0, n, STEP):
        yield lo, min(n, lo + STEP)


def _round_bits(bits: np.ndarray, out: np.ndarray) -> None:
    """bf16 rounding, ties to even, on float32 bits; a NaN kept as it is."""
    loops = _loops()
    if loops is not None:
        loops.round_bits(bits, out)
        return
    _count(bits.size)
    x, rounded = bits.view(np.float32), out.view(np.float32)
    for lo, hi in _runs(bits.size):
        part = x[lo:hi]
        # ml_dtypes rounds to nearest even as the bit arithmetic does; only a NaN's
        # payload may differ...
        with np.errstate(invalid="ignore"):
            rounded[lo:hi] = part.astype(ml_dtypes.bfloat16)
        nan = np.isnan(part)
        if nan.any():
            np.copyto(out[lo:hi], bits[lo:hi], where=nan)  # ...and a NaN is kept as it is


def _low_halves_zero(bits: np.ndarray) -> bool:
    loops = _loops()
    if loops is not None:
        return bool(loops.low_halves_zero(bits))
    for lo, hi in _runs(bits.size):
        _count(hi - lo)
        if np.any(bits[lo:hi] & np.uint32(0xFFFF)):
            return False
    return True


def _fp16_exact(bits: np.ndarray) -> bool:
    loops = _loops()
    if loops is not None:
        return bool(loops.fp16_exact(bits))
    for lo, hi in _runs(bits.size):
        _count(hi - lo)
        b = bits[lo:hi]
        field = (b >> np.uint32(23)) & np.uint32(0xFF)
        low = b & np.uint32(0x007FFFFF)
        e = field.astype(np.int32) - 127
        # infinities, NaNs and zeros round-trip; a float32 subnormal, a value too large or
        # below fp16's least step does not
        keep = (field == 0xFF) | ((field == 0) & (low == 0))
        bad = (field == 0) | (e > 15) | (e < -24)
        # mantissa bits fp16 has no room for: 13, more below its normal range
        dropped = np.where(e >= -14, 13, -1 - e).clip(0, 31).astype(np.uint32)
        bad |= (low & ((np.uint32(1) << dropped) - np.uint32(1))) != 0
        bad &= ~keep
        if np.any(bad):
            return False
    return True


def _high_halves(bits: np.ndarray, out: np.ndarray) -> None:
    loops = _loops()
    if loops is not None:
        loops.high_halves(bits, out)
        return
    _count(bits.size)
    halves = bits.view(np.uint16)
    out[...] = halves[1::2] if sys.byteorder == "little" else halves[0::2]


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32)


def round_to_bf16(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 ``x`` rounded to the nearest bf16 (ties to even), as float32 of ``x``'s
    shape (written into ``out``, a contiguous float32 array of that size, when given):
    ``x.astype(bfloat16).astype(float32)``, NaN kept as it is."""
    if out is None:
        out = np.empty(np.shape(x), np.float32)
    _round_bits(_bits(x), out.reshape(-1).view(np.uint32))
    return out


def exact_bf16(x: np.ndarray) -> bool:
    """True when every value of float32 ``x`` is a bf16 number (its low 16 bits zero)."""
    return _low_halves_zero(_bits(x))


def exact_fp16(x: np.ndarray) -> bool:
    """True when every value of float32 ``x`` is an fp16 number (NaN and infinities
    included): ``x.astype(float16).astype(float32)`` gives ``x`` back."""
    return _fp16_exact(_bits(x))


def high_halves(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The high 16 bits of each float32 of ``x``, flat ``uint16`` (written into ``out``,
    a flat contiguous uint16 array of ``x``'s size, when given): the bf16 number of an
    exact value."""
    if out is None:
        out = np.empty(np.size(x), np.uint16)
    _high_halves(_bits(x), out)
    return out

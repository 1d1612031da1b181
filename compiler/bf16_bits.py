"""bf16 (and fp16) numbers held in float32 bits: rounding, exactness and the stored half,
one pass each.

A weight rounded to bf16 stays float32 in the graph; its low 16 bits are zero and its
high 16 bits are the bf16 number. Rounding a model's weights, checking that they are
exact and taking their high halves for the weight blob are each a pass over every weight
byte: gigabytes for a decoder. Written as numpy expressions each costs several passes
and as many temporary arrays; these loops read each element once (and stop at the first
inexact one), so the three passes run at memory speed.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_EXPONENT = np.uint32(0x7F800000)
_MANTISSA = np.uint32(0x007FFFFF)


@nb.njit(cache=True, nogil=True)
def _round_bits(bits, out):  # pragma: no cover - compiled
    for i in range(bits.size):
        b = bits[i]
        if (b & _EXPONENT) == _EXPONENT and (b & _MANTISSA) != 0:
            out[i] = b  # a NaN stays the NaN it is
        else:
            out[i] = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) \
                & np.uint32(0xFFFF0000)


@nb.njit(cache=True, nogil=True)
def _low_halves_zero(bits):  # pragma: no cover - compiled
    for i in range(bits.size):
        if bits[i] & np.uint32(0xFFFF):
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _fp16_exact(bits):  # pragma: no cover - compiled
    for i in range(bits.size):
        b = bits[i]
        field = (b >> np.uint32(23)) & np.uint32(0xFF)
        low = b & _MANTISSA
        if field == 0xFF or (field == 0 and low == 0):
            continue  # infinities, NaNs and zeros round-trip
        e = np.int64(field) - 127
        if field == 0 or e > 15 or e < -24:
            return False  # a float32 subnormal, too large, or below fp16's least step
        dropped = 13 if e >= -14 else 13 + (-14 - e)  # mantissa bits fp16 has no room for
        if low & ((np.uint32(1) << np.uint32(dropped)) - np.uint32(1)):
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _high_halves(bits, out):  # pragma: no cover - compiled
    for i in range(bits.size):
        out[i] = np.uint16(bits[i] >> np.uint32(16))


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
    return bool(_low_halves_zero(_bits(x)))


def exact_fp16(x: np.ndarray) -> bool:
    """True when every value of float32 ``x`` is an fp16 number (NaN and infinities
    included): ``x.astype(float16).astype(float32)`` gives ``x`` back."""
    return bool(_fp16_exact(_bits(x)))


def high_halves(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The high 16 bits of each float32 of ``x``, flat ``uint16`` (written into ``out``,
    a flat contiguous uint16 array of ``x``'s size, when given): the bf16 number of an
    exact value."""
    if out is None:
        out = np.empty(np.size(x), np.uint16)
    _high_halves(_bits(x), out)
    return out

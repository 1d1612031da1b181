"""The compiled loops of :mod:`npuc.compiler.bf16_bits`: each reads every element once
and stops at the first inexact one. Importing this module loads Numba (about a second),
and its first call another second: :mod:`.bf16_bits` comes here only for gigabytes."""

from __future__ import annotations

import numba as nb
import numpy as np

_EXPONENT = np.uint32(0x7F800000)
_MANTISSA = np.uint32(0x007FFFFF)


@nb.njit(cache=True, nogil=True)
def round_bits(bits, out):  # pragma: no cover - compiled
    for i in range(bits.size):
        b = bits[i]
        if (b & _EXPONENT) == _EXPONENT and (b & _MANTISSA) != 0:
            out[i] = b  # a NaN stays the NaN it is
        else:
            out[i] = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) \
                & np.uint32(0xFFFF0000)


@nb.njit(cache=True, nogil=True)
def low_halves_zero(bits):  # pragma: no cover - compiled
    for i in range(bits.size):
        if bits[i] & np.uint32(0xFFFF):
            return False
    return True


@nb.njit(cache=True, nogil=True)
def fp16_exact(bits):  # pragma: no cover - compiled
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
def high_halves(bits, out):  # pragma: no cover - compiled
    for i in range(bits.size):
        out[i] = np.uint16(bits[i] >> np.uint32(16))

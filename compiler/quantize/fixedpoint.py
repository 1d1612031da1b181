"""Fixed-point requantization as integer hardware does it (gemmlowp / TFLite).

A real multiplier ``m`` (e.g. ``s_in * s_w / s_out``) is stored as an int32 ``M0`` in
Q0.31 and a power-of-two exponent ``shift``: ``m ~= M0 * 2**(shift - 31)`` with
``M0`` in ``[2**30, 2**31)``. Applying it to an int32 accumulator ``x``::

    MultiplyByQuantizedMultiplier(x, M0, shift) =
        RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << max(shift, 0), M0),
                            max(-shift, 0))

``SaturatingRoundingDoublingHighMul`` is the high 32 bits of ``2*x*M0`` rounded to nearest,
ties upward (its nudge is ``2**30`` or ``1 - 2**30``; the one overflow case
``INT32_MIN * INT32_MIN`` saturates);
``RoundingDivideByPOT`` is an arithmetic right shift rounded half away from zero. These
are the definitions of gemmlowp's ``fixedpoint.h``, which TFLite's reference kernels (and
the Warboy SDK's TFLite scheme) use; the functions below are bit-exact ports.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(m: float) -> tuple[int, int]:
    """``(M0, shift)`` with ``m ~= M0 * 2**(shift - 31)``; ``(0, 0)`` for ``m == 0``.

    As TFLite's ``QuantizeMultiplier``: ``M0 = round(frac * 2**31)`` (half away from
    zero) where ``m = frac * 2**shift``, ``frac`` in ``[0.5, 1)``.
    """
    if m == 0.0:
        return 0, 0
    if m < 0:
        raise ValueError(f"negative requantization multiplier {m}")
    frac, shift = math.frexp(m)
    q = int(math.floor(abs(frac) * (1 << 31) + 0.5))
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:  # too small to represent: the product is zero anyway
        return 0, 0
    if shift > 30:
        raise ValueError(f"requantization multiplier {m} is too large")
    return q, shift


def quantize_multipliers(ms) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`quantize_multiplier`: int32 arrays ``M0`` and ``shift``, the same
    numbers (``frac * 2**31 + 0.5`` is exact in float64: ``frac`` has 53 bits)."""
    m = np.asarray(ms, dtype=np.float64).ravel()
    frac, shift = np.frexp(m)
    q = np.floor(frac * 2.0**31 + 0.5)
    top = q == 2.0**31
    q[top] /= 2
    shift = shift.astype(np.int64) + top
    tiny = (m == 0.0) | (shift < -31)
    if not np.all(np.isfinite(m)) or np.any(m < 0) or np.any(shift[~tiny] > 30):
        pairs = [quantize_multiplier(float(x)) for x in m]  # raises what is wrong
        return (np.array([p[0] for p in pairs], dtype=np.int32),
                np.array([p[1] for p in pairs], dtype=np.int32))
    q[tiny], shift[tiny] = 0, 0
    return q.astype(np.int32), shift.astype(np.int32)


@nb.njit(cache=True, inline="always")
def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul of two int32 values (ties round upward)."""
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = np.int64(a) * np.int64(b)
    nudge = np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30))
    s = ab + nudge
    # C integer division truncates toward zero
    q = s // np.int64(1 << 31)
    if s < 0 and q * np.int64(1 << 31) != s:
        q += 1
    return q


@nb.njit(cache=True, inline="always")
def rdbpot(x, exponent):
    """RoundingDivideByPOT: ``x / 2**exponent`` rounded half away from zero."""
    if exponent == 0:
        return x
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


@nb.njit(cache=True, inline="always")
def mbqm(x, m0, shift):
    """MultiplyByQuantizedMultiplier(x, M0, shift) for an int32 ``x``."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    v = np.int64(x) << left
    # the shifted value must stay an int32, as in the C code (callers keep it in range)
    if v > INT32_MAX:
        v = INT32_MAX
    elif v < INT32_MIN:
        v = INT32_MIN
    return rdbpot(srdhm(v, m0), right)


@nb.njit(cache=True)
def requantize_channels(acc, m0, shift, out_zp, qmin, qmax, out):
    """``out[n, c, k] = clamp(mbqm(acc[n, c, k], M0[c], shift[c]) + zp, qmin, qmax)``.

    ``acc`` is int32 (N, C, K); ``m0``/``shift`` have one entry per channel (or one).
    """
    n, c, k = acc.shape
    per_channel = m0.shape[0] > 1
    for b in range(n):
        for ch in range(c):
            j = ch if per_channel else 0
            mm, ss = m0[j], shift[j]
            for i in range(k):
                v = mbqm(acc[b, ch, i], mm, ss) + out_zp
                if v < qmin:
                    v = qmin
                elif v > qmax:
                    v = qmax
                out[b, ch, i] = v
    return out


def requantize(acc: np.ndarray, m0, shift, out_zp: int, qmin: int, qmax: int,
               axis: int = 1, dtype=np.int8) -> np.ndarray:
    """Requantize an int32 accumulator tensor per channel along ``axis`` (or per tensor)."""
    acc = np.asarray(acc, dtype=np.int32)
    m0 = np.atleast_1d(np.asarray(m0, dtype=np.int32))
    shift = np.atleast_1d(np.asarray(shift, dtype=np.int32))
    shape = acc.shape
    if acc.ndim == 0:
        a3 = acc.reshape(1, 1, 1)
    else:
        axis = axis % acc.ndim
        lead = int(np.prod(shape[:axis], dtype=np.int64))
        a3 = acc.reshape(lead, shape[axis], -1)
    out = np.empty(a3.shape, dtype=dtype)
    requantize_channels(np.ascontiguousarray(a3), m0, shift, int(out_zp), int(qmin), int(qmax),
                        out)
    return out.reshape(shape)


@nb.njit(cache=True)
def _add_kernel(a, b, a_zp, b_zp, a_m, a_s, b_m, b_s, o_m, o_s, left, o_zp, qmin, qmax, out):
    for i in range(a.shape[0]):
        x = (np.int64(a[i]) - a_zp) << left
        y = (np.int64(b[i]) - b_zp) << left
        sx = mbqm(x, a_m, a_s)
        sy = mbqm(y, b_m, b_s)
        v = mbqm(sx + sy, o_m, o_s) + o_zp
        out[i] = qmin if v < qmin else (qmax if v > qmax else v)
    return out


def add_multipliers(sa: float, sb: float, sy: float, left_shift: int = 20):
    """The three (M0, shift) pairs of TFLite's int8 Add for scales ``sa + sb -> sy``."""
    twice_max = 2.0 * max(sa, sb)
    return (quantize_multiplier(sa / twice_max), quantize_multiplier(sb / twice_max),
            quantize_multiplier(twice_max / ((1 << left_shift) * sy)))


def quantized_add(a, b, a_zp, b_zp, ma, mb, mo, out_zp, qmin, qmax, left_shift=20,
                  dtype=np.int8):
    """TFLite's int8 Add: inputs are shifted left by 20 bits, each scaled to a common
    scale with its multiplier, summed, then requantized to the output scale."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    out = np.empty(a.shape, dtype=dtype)
    _add_kernel(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1),
                int(a_zp), int(b_zp), int(ma[0]), int(ma[1]), int(mb[0]), int(mb[1]),
                int(mo[0]), int(mo[1]), int(left_shift), int(out_zp), int(qmin), int(qmax),
                out.reshape(-1))
    return out


@nb.njit(cache=True)
def _mul_kernel(a, b, a_zp, b_zp, m, s, o_zp, qmin, qmax, out):
    for i in range(a.shape[0]):
        p = (np.int64(a[i]) - a_zp) * (np.int64(b[i]) - b_zp)
        v = mbqm(p, m, s) + o_zp
        out[i] = qmin if v < qmin else (qmax if v > qmax else v)
    return out


def quantized_mul(a, b, a_zp, b_zp, m, out_zp, qmin, qmax, dtype=np.int8):
    """TFLite's int8 Mul: ``(a - za) * (b - zb)`` (an int32) times ``sa*sb/sy``."""
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    out = np.empty(a.shape, dtype=dtype)
    _mul_kernel(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1),
                int(a_zp), int(b_zp), int(m[0]), int(m[1]), int(out_zp), int(qmin), int(qmax),
                out.reshape(-1))
    return out

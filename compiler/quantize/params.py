"""Scales and zero points from ranges, for activations and weights.

Activations are per tensor: asymmetric int8 maps ``[lo, hi]`` (which contains 0) onto
``[-128, 127]`` with an integer zero point so that 0.0 is exact; symmetric maps
``[-amax, amax]`` onto ``[-127, 127]`` with zero point 0. Weights are symmetric, per
output channel where the chip allows it, in ``[-127, 127]`` (narrow) or ``[-128, 127]``.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from npuc.ir.types import QuantParams

from .scheme import Scheme

FP8_MAX = float(ml_dtypes.finfo(ml_dtypes.float8_e4m3fn).max)  # 448


def activation_params(lo: float, hi: float, scheme: Scheme) -> QuantParams:
    """Per-tensor int8 parameters for the range ``[lo, hi]``."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if scheme.act_symmetric:
        amax = max(-lo, hi)
        scale = amax / 127.0 if amax > 0 else 1.0
        return QuantParams(np.float32(scale), np.int8(0))
    scale = (hi - lo) / 255.0
    if scale <= 0:
        return QuantParams(np.float32(1.0), np.int8(0))
    scale = np.float32(scale)
    zp = int(np.clip(np.round(-128 - lo / float(scale)), -128, 127))
    return QuantParams(scale, np.int8(zp))


def weight_params(w: np.ndarray, axis: int | None, scheme: Scheme) -> QuantParams:
    """Symmetric int8 parameters for a weight, per channel along ``axis`` or per tensor."""
    if axis is None or not scheme.weights_per_channel:
        amax = np.array([np.abs(w).max()]) if w.size else np.zeros(1)
        axis = None
    else:
        axis = axis % w.ndim
        amax = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    zp = np.zeros(scale.shape, dtype=np.int8)
    if axis is None:
        return QuantParams(scale.reshape(()), zp.reshape(()), None)
    return QuantParams(scale, zp, axis)


def quantize_weight(w: np.ndarray, q: QuantParams, scheme: Scheme) -> np.ndarray:
    """``clip(round_half_even(w / scale), wmin, 127)`` as int8."""
    s = q.scale
    if q.axis is not None:
        shape = [1] * w.ndim
        shape[q.axis] = -1
        s = s.reshape(shape)
    return np.clip(np.rint(w / s), scheme.wmin, 127).astype(np.int8)


def dequantize_weight(wq: np.ndarray, q: QuantParams) -> np.ndarray:
    s = q.scale
    if q.axis is not None:
        shape = [1] * wq.ndim
        shape[q.axis] = -1
        s = s.reshape(shape)
    return wq.astype(np.float32) * s


def quantize_value(x: np.ndarray, q: QuantParams) -> np.ndarray:
    """A float array to int8 with per-tensor parameters (round half to even, saturate)."""
    return np.clip(np.rint(x / q.scale) + int(q.zero_point), -128, 127).astype(np.int8)


def dequantize_value(x: np.ndarray, q: QuantParams) -> np.ndarray:
    s, z = q.scale, q.zero_point.astype(np.float32)
    if q.axis is not None and x.ndim:
        shape = [1] * x.ndim
        shape[q.axis] = -1
        s, z = s.reshape(shape), z.reshape(shape)
    return (x.astype(np.float32) - z) * s


def fp8_scale(amax) -> np.ndarray:
    """The scale that maps ``amax`` to the largest float8 e4m3 value (448)."""
    amax = np.asarray(amax, dtype=np.float64)
    return np.where(amax > 0, amax / FP8_MAX, 1.0).astype(np.float32)

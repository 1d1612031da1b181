"""Signal processing: DFT, STFT, the Hann/Hamming/Blackman windows, MelWeightMatrix.

Complex tensors are real tensors with a trailing dimension of 2 (real, imaginary), as
in ONNX; the transforms are numpy's FFT in float64, cast back to the input type.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from . import kernel
from .checks import accepts


def _to_complex(x):
    return x[..., 0].astype(np.float64) if x.shape[-1] == 1 else x[..., 0] + 1j * x[..., 1].astype(np.float64)


def _to_pair(z, dtype):
    return np.stack([z.real, z.imag], axis=-1).astype(dtype)


def _scalar(v, default=None):
    return default if v is None or np.asarray(v).size == 0 else int(np.asarray(v).reshape(-1)[0])


@kernel("DFT")
@accepts("float")
def dft(inputs, attrs, ctx):
    x = inputs[0]
    length = _scalar(inputs[1] if len(inputs) > 1 else None)
    if ctx.opset >= 20:
        axis = _scalar(inputs[2] if len(inputs) > 2 else None, -2)
    else:
        axis = attrs.get("axis", 1)
    axis = axis % x.ndim
    if axis == x.ndim - 1:
        axis = x.ndim - 2  # the axis counts the trailing (real, imag) dimension too
    z = _to_complex(x)
    inverse, onesided = attrs.get("inverse", 0), attrs.get("onesided", 0)
    if inverse and onesided:  # a half spectrum in, a real signal out
        n = length or 2 * (z.shape[axis] - 1)
        return [np.fft.irfft(z, n=n, axis=axis)[..., None].astype(x.dtype)]
    n = length or z.shape[axis]
    out = np.fft.ifft(z, n=n, axis=axis) if inverse else np.fft.fft(z, n=n, axis=axis)
    if onesided:
        out = np.take(out, np.arange(n // 2 + 1), axis=axis)
    return [_to_pair(out, x.dtype)]


@kernel("STFT")
@accepts("float")
def stft(inputs, attrs, ctx):
    x, step = inputs[0], _scalar(inputs[1])
    window = inputs[2] if len(inputs) > 2 else None
    frame_length = _scalar(inputs[3] if len(inputs) > 3 else None)
    if frame_length is None:
        frame_length = window.shape[0] if window is not None else x.shape[-2]
    z = _to_complex(x)  # (batch, length)
    frames = 1 + (z.shape[1] - frame_length) // step
    idx = np.arange(frames)[:, None] * step + np.arange(frame_length)[None, :]
    seg = z[:, idx]  # (batch, frames, frame_length)
    if window is not None:
        seg = seg * window.astype(np.float64)
    out = np.fft.fft(seg, axis=-1)
    if attrs.get("onesided", 1):
        out = out[..., :frame_length // 2 + 1]
    return [_to_pair(out, x.dtype)]


def _window(inputs, attrs, coeffs):
    size = _scalar(inputs[0])
    periodic = attrs.get("periodic", 1)
    n = np.arange(size, dtype=np.float64)
    denom = size if periodic else size - 1
    w = np.zeros(size)
    for k, a in enumerate(coeffs):
        w += a * np.cos(2 * np.pi * k * n / denom)
    dtype = helper.tensor_dtype_to_np_dtype(attrs.get("output_datatype", 1))
    return [w.astype(dtype)]


@kernel("HannWindow")
def hann_window(inputs, attrs, ctx):
    return _window(inputs, attrs, [0.5, -0.5])


@kernel("HammingWindow")
def hamming_window(inputs, attrs, ctx):
    return _window(inputs, attrs, [25 / 46, -(1 - 25 / 46)])


@kernel("BlackmanWindow")
def blackman_window(inputs, attrs, ctx):
    return _window(inputs, attrs, [0.42, -0.5, 0.08])


@kernel("MelWeightMatrix")
def mel_weight_matrix(inputs, attrs, ctx):
    mel_bins, dft_length, rate = (_scalar(v) for v in inputs[:3])
    lo, hi = (float(np.asarray(v).reshape(-1)[0]) for v in inputs[3:5])
    spec_bins = dft_length // 2 + 1
    points = np.arange(mel_bins + 2)
    lo_mel = 2595 * np.log1p(lo / 700) / np.log(10)
    hi_mel = 2595 * np.log1p(hi / 700) / np.log(10)
    hz = 700 * np.expm1((points * (hi_mel - lo_mel) / points.shape[0] + lo_mel) / 2595 * np.log(10))
    bins = (((dft_length + 1) * hz) // rate).astype(int)
    out = np.zeros((spec_bins, mel_bins))
    for i in range(mel_bins):
        left, center, right = bins[i], bins[i + 1], bins[i + 2]
        if center == left:
            out[center, i] = 1
        else:
            j = np.arange(left, center + 1)
            out[j, i] = (j - left) / (center - left)
        if right > center:
            j = np.arange(center, right)
            out[j, i] = (right - j) / (right - center)
    return [out.astype(helper.tensor_dtype_to_np_dtype(attrs.get("output_datatype", 1)))]

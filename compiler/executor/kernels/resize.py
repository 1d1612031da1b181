"""Resize and Upsample.

Every Resize mode is separable, so the input is resized one axis at a time: for each
axis a small table gives, per output position, the input positions it reads and their
weights (nearest: one position; linear: 2; cubic: 4; antialiased: a filter widened by
1/scale). The tables follow the ONNX reference exactly: the neighbours of a source
coordinate ``x`` are the positions nearest to it (ties to the left), read with edge
replication, and ``exclude_outside`` zeroes and renormalises weights outside the input.
Applying a table is one numpy gather and a weighted sum along the axis.
"""

from __future__ import annotations

import numpy as np

from . import kernel
from .checks import accepts, unsupported

TRANSFORMS = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
              "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"}
NEAREST_MODES = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}


def source_coords(mode, out_len, in_len, scale, roi_start=0.0, roi_end=1.0):
    """The input coordinate each output position maps to (float64 array)."""
    y = np.arange(out_len, dtype=np.float64)
    out_f = scale * in_len
    if mode == "align_corners":
        return np.zeros(out_len) if out_f == 1 else y * (in_len - 1) / (out_f - 1)
    if mode == "asymmetric":
        return y / scale
    if mode == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale
    if mode == "tf_crop_and_resize":
        if out_f == 1:
            x = np.full(out_len, (roi_end - roi_start) * (in_len - 1) / 2)
        else:
            x = y * (roi_end - roi_start) * (in_len - 1) / (out_f - 1)
        return x + roi_start * (in_len - 1)
    if mode == "pytorch_half_pixel":
        return np.full(out_len, -0.5) if out_f == 1 else (y + 0.5) / scale - 0.5
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5
    # half_pixel_symmetric
    offset = in_len / 2 * (1 - out_len / out_f)
    return offset + (y + 0.5) / scale - 0.5


def _cubic(t, a):
    t = np.abs(t)
    return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                    np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


def axis_table(x_src, in_len, scale, mode, nearest_mode, cubic_a, antialias, exclude_outside):
    """(indices, weights), each (out_len, n): what each output position reads."""
    is_int = x_src == np.floor(x_src)
    left = np.where(is_int, x_src - 1, np.floor(x_src)).astype(np.int64)
    ratio = x_src - left  # in (0, 1]
    if mode == "nearest":
        if nearest_mode == "round_prefer_floor":
            right = ratio > 0.5
        elif nearest_mode == "round_prefer_ceil":
            right = ratio >= 0.5
        elif nearest_mode == "floor":
            right = np.zeros_like(is_int)
        else:
            right = np.ones_like(is_int)
        right |= is_int
        idx = (left + right)[:, None]
        return np.clip(idx, 0, in_len - 1), np.ones_like(idx, dtype=np.float64)
    s = min(scale, 1.0) if antialias else 1.0
    if mode == "linear":
        start = int(np.floor(-1 / s) + 1) if antialias else 0
        offsets = np.arange(start, 2 - start)
        w = np.clip(1 - np.abs((offsets[None, :] - ratio[:, None]) * s), 0, 1)
    else:
        start = int(np.floor(-2 / s) + 1) if antialias else -1
        offsets = np.arange(start, 2 - start)
        w = _cubic((offsets[None, :] - ratio[:, None]) * s, cubic_a)
    if antialias:
        w = w / w.sum(axis=1, keepdims=True)
    idx = left[:, None] + offsets[None, :]
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= in_len), 0.0, w)
        w = w / w.sum(axis=1, keepdims=True)
    return np.clip(idx, 0, in_len - 1), w


def resize_axis(x, axis, idx, w, work_dtype):
    """Apply one axis table to ``x`` (the other axes untouched)."""
    if idx.shape[1] == 1:
        return np.take(x, idx[:, 0], axis=axis)
    g = np.take(x, idx, axis=axis).astype(work_dtype, copy=False)  # axis -> (out, n)
    shape = [1] * g.ndim
    shape[axis], shape[axis + 1] = w.shape
    return (g * w.reshape(shape).astype(work_dtype)).sum(axis=axis + 1)


def resize(x, scales, sizes, attrs, roi=None, axes=None, opset=19):
    """Resize ``x``; ``scales`` and ``sizes`` are per entry of ``axes`` (all axes if None)."""
    r = x.ndim
    axes = [a % r for a in axes] if axes is not None else list(range(r))
    mode = attrs.get("mode", "nearest")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel" if opset >= 11 else "asymmetric")
    nearest_mode = attrs.get("nearest_mode", "round_prefer_floor" if opset >= 11 else "floor")
    if sizes is not None:
        sizes = [int(v) for v in sizes]
        sc = [sizes[i] / x.shape[a] for i, a in enumerate(axes)]
        policy = attrs.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            common = min(sc) if policy == "not_larger" else max(sc)
            sc = [common] * len(axes)
            sizes = [int(common * x.shape[a] + 0.5) for a in axes]
    else:
        sc = [float(v) for v in scales]
        sizes = [int(np.floor(s * x.shape[a])) for s, a in zip(sc, axes)]
    work = np.float64 if x.dtype == np.float64 or x.dtype.kind != "f" else np.float32
    y = x
    for i, a in enumerate(axes):
        n_in, n_out = x.shape[a], sizes[i]
        if n_out == n_in and sc[i] == 1.0 and ctm != "tf_crop_and_resize":
            continue
        rs, re = (float(roi[i]), float(roi[len(axes) + i])) if roi is not None else (0.0, 1.0)
        src = source_coords(ctm, n_out, n_in, sc[i], rs, re)
        idx, w = axis_table(src, n_in, sc[i], mode, nearest_mode, attrs.get("cubic_coeff_a", -0.75),
                            attrs.get("antialias", 0) and mode != "nearest",
                            attrs.get("exclude_outside", 0))
        y = resize_axis(y, a, idx, w, work)
        if ctm == "tf_crop_and_resize":
            outside = (src < 0) | (src > n_in - 1)
            if outside.any():
                y = np.array(y, dtype=work, copy=True)
                sel = [slice(None)] * r
                sel[a] = outside
                y[tuple(sel)] = attrs.get("extrapolation_value", 0.0)
    if y.dtype != x.dtype:
        if x.dtype.kind in "iu":
            info = np.iinfo(x.dtype)
            y = np.clip(np.rint(y), info.min, info.max)
        y = y.astype(x.dtype)
    return y if y is not x else x.copy()


def _check(attrs, ctx):
    mode = attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        raise unsupported(ctx, f"Resize mode {mode!r}")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    if ctm not in TRANSFORMS:
        raise unsupported(ctx, f"coordinate_transformation_mode {ctm!r}")
    if attrs.get("nearest_mode", "floor") not in NEAREST_MODES:
        raise unsupported(ctx, f"nearest_mode {attrs['nearest_mode']!r}")


def _present(inputs, i):
    return inputs[i] if len(inputs) > i and inputs[i] is not None and inputs[i].size > 0 else None


@kernel("Resize")
@accepts("float", "int")
def resize_kernel(inputs, attrs, ctx):
    x = inputs[0]
    _check(attrs, ctx)
    if ctx.opset < 11:
        return [resize(x, inputs[1], None, attrs, opset=ctx.opset)]
    roi, scales, sizes = _present(inputs, 1), _present(inputs, 2), _present(inputs, 3)
    axes = attrs.get("axes")
    return [resize(x, scales, sizes, attrs, roi=roi, axes=axes, opset=ctx.opset)]


@kernel("Upsample")
@accepts("float", "int")
def upsample(inputs, attrs, ctx):
    x = inputs[0]
    scales = inputs[1] if len(inputs) > 1 else np.array(attrs["scales"], dtype=np.float32)
    mode = attrs.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise unsupported(ctx, f"Upsample mode {mode!r}")
    a = {"mode": "linear" if mode != "nearest" else "nearest",
         "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    return [resize(x, scales, None, a)]

"""Sliding windows, shared by the convolution, pooling and quantized kernels: padding
(``auto_pad`` resolved to explicit pads), output sizes, and im2col / col2im, which gather
a window's elements into columns (padding never materialised) and scatter them back."""

from __future__ import annotations

import itertools

import numpy as np

from .checks import unsupported


def conv_pads(auto_pad, in_shape, kernel_shape, strides, dilations, pads=None, ctx=None):
    """Begin/end pads (ONNX layout ``[b0, b1, ..., e0, e1, ...]``) for a conv or pool."""
    n = len(in_shape)
    auto_pad = auto_pad or "NOTSET"
    if auto_pad in ("NOTSET", "VALID"):
        if auto_pad == "VALID" or pads is None:
            return [0] * (2 * n)
        return list(pads)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise unsupported(ctx, f"auto_pad {auto_pad!r}")
    begin, end = [], []
    for i in range(n):
        out = -(-in_shape[i] // strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel_shape[i] - 1) * dilations[i] + 1 - in_shape[i])
        small = total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else total - small)
        end.append(total - small if auto_pad == "SAME_UPPER" else small)
    return begin + end


def _valid_range(out_len, in_len, stride, offset):
    """Output positions o with 0 <= o*stride + offset < in_len, as (lo, hi)."""
    lo = (-offset + stride - 1) // stride if offset < 0 else 0
    hi = min(out_len, (in_len - 1 - offset) // stride + 1) if in_len - 1 - offset >= 0 else 0
    return lo, max(lo, hi)


def _window_slices(kernel_shape, strides, pads, dilations, window_shape, image_shape):
    """For each kernel offset: (offset, the image slices it reads, the window positions
    that read them), axis by axis; offsets that read only padding are skipped."""
    nd = len(kernel_shape)
    for ks in itertools.product(*(range(k) for k in kernel_shape)):
        image, window = [], []
        for d in range(nd):
            offset = ks[d] * dilations[d] - pads[d]
            lo, hi = _valid_range(window_shape[d], image_shape[d], strides[d], offset)
            if hi <= lo:
                break
            start = lo * strides[d] + offset
            image.append(slice(start, start + (hi - lo - 1) * strides[d] + 1, strides[d]))
            window.append(slice(lo, hi))
        else:
            yield ks, image, window


def im2col(x, kernel_shape, strides, pads, dilations, out_shape, dtype=None):
    """Columns ``(N, C, *kernel, *out)`` of ``x`` (N, C, *spatial); padding reads zero."""
    n, c = x.shape[:2]
    cols = np.zeros((n, c, *kernel_shape, *out_shape), dtype=dtype or x.dtype)
    every = [slice(None), slice(None)]
    for ks, image, window in _window_slices(kernel_shape, strides, pads, dilations,
                                            out_shape, x.shape[2:]):
        cols[tuple(every + list(ks) + window)] = x[tuple(every + image)]
    return cols


def col2im_add(cols, out, strides, pads, dilations):
    """Scatter-add columns ``(N, C, *kernel, *in)`` into ``out`` (N, C, *spatial)."""
    nd = out.ndim - 2
    every = [slice(None), slice(None)]
    for ks, image, window in _window_slices(cols.shape[2:2 + nd], strides, pads, dilations,
                                            cols.shape[2 + nd:], out.shape[2:]):
        out[tuple(every + image)] += cols[tuple(every + list(ks) + window)]
    return out


def conv_out_shape(in_shape, kernel_shape, strides, pads, dilations):
    """The spatial output sizes of a convolution or pooling with explicit pads."""
    nd = len(kernel_shape)
    return tuple((in_shape[d] + pads[d] + pads[d + nd] - ((kernel_shape[d] - 1) * dilations[d] + 1))
                 // strides[d] + 1 for d in range(nd))


def conv_geometry(x, w, attrs, ctx):
    """Strides, explicit pads and dilations of a convolution from its attributes."""
    nd = x.ndim - 2
    kshape = list(attrs.get("kernel_shape") or w.shape[2:])
    strides = list(attrs.get("strides") or [1] * nd)
    dilations = list(attrs.get("dilations") or [1] * nd)
    pads = conv_pads(attrs.get("auto_pad"), x.shape[2:], kshape, strides, dilations, attrs.get("pads"), ctx)
    return strides, pads, dilations

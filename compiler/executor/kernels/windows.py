"""Sliding windows, shared by the convolution, pooling and quantized kernels: padding
(``auto_pad`` resolved to explicit pads), output sizes, and im2col / col2im, which gather
a window's elements into columns (padding never materialised) and scatter them back."""

from __future__ import annotations

import itertools

import numba as nb
import numpy as np

from .. import threads
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
    """Columns ``(N, C, *kernel, *out)`` of ``x`` (N, C, *spatial); padding reads zero.

    Float images of 2 spatial dimensions with output rows of 16 or more are gathered by a
    Numba loop in channel blocks on npuc's threads; others (and short rows, where numpy's
    few large strided copies cost less than a loop per row) by one numpy copy per kernel
    offset."""
    n, c = x.shape[:2]
    dtype = np.dtype(dtype or x.dtype)
    floats = (np.float32, np.float64)
    if x.ndim == 4 and x.dtype in floats and dtype in floats and out_shape[1] >= 16:
        cols = np.empty((n, c, *kernel_shape, *out_shape), dtype=dtype)
        step = threads.block(c)
        threads.parallel(lambda i: _im2col2d(x, cols, i * step, min(c, (i + 1) * step),
                                             strides[0], strides[1], pads[0], pads[1],
                                             dilations[0], dilations[1]), -(-c // step))
        return cols
    return _im2col_copies(x, kernel_shape, strides, pads, dilations, out_shape, dtype)


def _im2col_copies(x, kernel_shape, strides, pads, dilations, out_shape, dtype):
    """:func:`im2col` by one strided numpy copy per kernel offset, any number of
    spatial dimensions."""
    n, c = x.shape[:2]
    cols = np.zeros((n, c, *kernel_shape, *out_shape), dtype=dtype)
    every = [slice(None), slice(None)]
    for ks, image, window in _window_slices(kernel_shape, strides, pads, dilations,
                                            out_shape, x.shape[2:]):
        cols[tuple(every + list(ks) + window)] = x[tuple(every + image)]
    return cols


@nb.njit(cache=True, nogil=True)
def _im2col2d(x, cols, c0, c1, sh, sw, ph, pw, dh, dw):
    """cols[b, ch, ki, kj, i, j] = x[b, ch, i * sh + ki * dh - ph, j * sw + kj * dw - pw]
    (zero outside x) for channels [c0, c1)."""
    n, _, h, wd = x.shape
    kh, kw, oh, ow = cols.shape[2], cols.shape[3], cols.shape[4], cols.shape[5]
    for b in range(n):
        for ch in range(c0, c1):
            for ki in range(kh):
                for kj in range(kw):
                    off = kj * dw - pw
                    j0 = min(ow, max(0, -(off // sw)))
                    j1 = max(j0, min(ow, (wd - 1 - off) // sw + 1)) if wd - 1 - off >= 0 else j0
                    for i in range(oh):
                        dst = cols[b, ch, ki, kj, i]
                        r = i * sh + ki * dh - ph
                        if r < 0 or r >= h:
                            dst[:] = 0
                            continue
                        dst[:j0] = 0
                        dst[j1:] = 0
                        if j1 > j0:
                            _copy_every(dst[j0:j1], x[b, ch, r, j0 * sw + off:], j1 - j0, sw)


@nb.njit(cache=True, nogil=True, inline="always")
def _copy_every(dst, src, m, step):
    """dst[t] = src[t * step] for t < m (literal steps, so that the copy vectorises)."""
    if step == 1:
        for t in range(m):
            dst[t] = src[t]
    elif step == 2:
        for t in range(m):
            dst[t] = src[2 * t]
    else:
        for t in range(m):
            dst[t] = src[t * step]


@nb.njit(cache=True, nogil=True)
def pad_phases(x, b, ch, buf, sh, sw, ph, pw):
    """Copy plane (b, ch) of x into its padded phase planes (in ``buf``'s type: a float64
    buffer widens): ``buf[pr, pc, R, U]`` is padded position (R * sh + pr, U * sw + pc).
    Positions outside the input are left as they are (the padding the caller put there).
    A pool's or a depthwise convolution's kernel tap is then one long contiguous loop."""
    pad_phase_rows(x, b, ch, buf, sh, sw, ph, pw, 0, buf.shape[2] * sh)


@nb.njit(cache=True, nogil=True, inline="always")
def pad_phase_rows(x, b, ch, buf, sh, sw, ph, pw, lo, hi):
    """:func:`pad_phases` of the padded rows [lo, hi) only."""
    h, wd = x.shape[2], x.shape[3]
    rl, ul = buf.shape[2], buf.shape[3]
    for r in range(max(lo, ph), min(hi, h + ph, rl * sh)):
        src = x[b, ch, r - ph]
        for pc in range(sw):
            u0 = max(0, -((pc - pw) // sw))
            u1 = min(ul, (wd - 1 + pw - pc) // sw + 1)
            if u1 > u0:
                _copy_every(buf[r % sh, pc, r // sh, u0:u1], src[u0 * sw + pc - pw:],
                            u1 - u0, sw)


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

"""Convolutions: Conv, ConvTranspose, Col2Im.

The general convolution is im2col + one BLAS matrix product per (image, group): the
columns are gathered with one strided numpy copy per kernel offset, and padding is never
materialised (out-of-range window positions stay zero in the column buffer). Depthwise
convolutions (one input channel per group) take a direct Numba loop instead, because
im2col would turn them into thousands of tiny matrix products. The Numba loops are
single-threaded: numpy's BLAS already uses the cores, and the two pools would fight.

The numerics live in functions that take explicit (possibly strided) input views,
explicit padding and an optional output buffer, so that the tile simulator can run them
on a window of a tensor; the registered kernels are thin wrappers that read attributes.
The integer convolutions (ConvInteger, QLinearConv) live in ``quant``; DeformConv in
``vision``; padding and im2col in ``windows``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .. import threads
from . import accumulate, kernel
from .checks import accepts, unsupported
from .windows import col2im_add, conv_geometry, conv_out_shape, im2col


@nb.njit(cache=True, nogil=True)
def _depthwise2d(x, w, out, sh, sw, ph, pw, dh, dw, mult):
    n, c, h, wd = x.shape
    oh, ow = out.shape[2], out.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    # One zero-padded copy of each input plane keeps the inner loop free of bounds tests.
    hp = (oh - 1) * sh + (kh - 1) * dh + 1
    wp = (ow - 1) * sw + (kw - 1) * dw + 1
    xp = np.zeros((hp, wp), dtype=np.float64)
    acc = np.zeros(ow, dtype=np.float64)  # float64 accumulation, as ``accumulate`` defines
    r0, r1 = max(0, -ph), min(h, hp - ph)
    c0, c1 = max(0, -pw), min(wd, wp - pw)
    for b in range(n):
        for ic in range(c):
            xp[r0 + ph:r1 + ph, c0 + pw:c1 + pw] = x[b, ic, r0:r1, c0:c1]
            for oc in range(ic * mult, (ic + 1) * mult):
                for i in range(oh):
                    acc[:] = 0.0
                    for ki in range(kh):
                        xrow = xp[i * sh + ki * dh]
                        for kj in range(kw):
                            wv = np.float64(w[oc, 0, ki, kj])
                            if sw == 1:  # a step-free slice stays contiguous and vectorises
                                xc = xrow[kj * dw:kj * dw + ow]
                                for t in range(ow):
                                    acc[t] += wv * xc[t]
                            else:
                                xs = xrow[kj * dw:kj * dw + (ow - 1) * sw + 1:sw]
                                for t in range(ow):
                                    acc[t] += wv * xs[t]
                    out[b, oc, i, :] = acc


@nb.njit(cache=True, nogil=True, inline="always")
def _taps(k):
    """A 3x3 kernel's nine weights in float64, row by row."""
    return (np.float64(k[0, 0]), np.float64(k[0, 1]), np.float64(k[0, 2]),
            np.float64(k[1, 0]), np.float64(k[1, 1]), np.float64(k[1, 2]),
            np.float64(k[2, 0]), np.float64(k[2, 1]), np.float64(k[2, 2]))


@nb.njit(cache=True, nogil=True, inline="always")
def _sum9(k, a0, a1, a2, b0, b1, b2, c0, c1, c2):
    """The nine products of one output, summed in :func:`_depthwise2d`'s order (kernel
    row by row) in one register."""
    s = 0.0
    s += k[0] * a0
    s += k[1] * a1
    s += k[2] * a2
    s += k[3] * b0
    s += k[4] * b1
    s += k[5] * b2
    s += k[6] * c0
    s += k[7] * c1
    s += k[8] * c2
    return s


@nb.njit(cache=True, nogil=True)
def _depthwise3x3(x, w, out, ph, pw):
    """The common depthwise case (3x3, stride and dilation 1, one output channel per
    input channel): each output sums its nine products in a register, in the order of
    :func:`_depthwise2d` (row by row of the kernel), so the result is the same to the bit;
    the unit steps let the loop over an output row vectorise."""
    n, c, h, wd = x.shape
    oh, ow = out.shape[2], out.shape[3]
    xp = np.zeros((oh + 2, ow + 2), dtype=np.float64)
    r0, r1 = max(0, -ph), min(h, oh + 2 - ph)
    c0, c1 = max(0, -pw), min(wd, ow + 2 - pw)
    for b in range(n):
        for ch in range(c):
            for r in range(r0, r1):
                for q in range(c0, c1):
                    xp[r + ph, q + pw] = x[b, ch, r, q]
            k = _taps(w[ch, 0])
            plane = out[b, ch]
            for i in range(oh):
                xa, xb, xc = xp[i], xp[i + 1], xp[i + 2]
                row = plane[i]
                for t in range(ow):
                    row[t] = _sum9(k, xa[t], xa[t + 1], xa[t + 2], xb[t], xb[t + 1],
                                   xb[t + 2], xc[t], xc[t + 1], xc[t + 2])


@nb.njit(cache=True, nogil=True)
def _depthwise3x3s2(x, w, out, ph, pw):
    """3x3 depthwise with stride 2 (dilation 1, multiplier 1), summed as
    :func:`_depthwise3x3`: the padded plane is kept as its even and its odd columns, so
    that every tap reads a contiguous row."""
    n, c, h, wd = x.shape
    oh, ow = out.shape[2], out.shape[3]
    hp = 2 * oh + 1
    xe = np.zeros((hp, ow + 1), dtype=np.float64)  # padded columns 0, 2, ..., 2 ow
    xo = np.zeros((hp, ow), dtype=np.float64)  # padded columns 1, 3, ..., 2 ow - 1
    r0, r1 = max(0, -ph), min(h, hp - ph)
    for b in range(n):
        for ch in range(c):
            for r in range(r0, r1):
                src, de, do = x[b, ch, r], xe[r + ph], xo[r + ph]
                for u in range(ow + 1):
                    q = 2 * u - pw
                    if 0 <= q < wd:
                        de[u] = src[q]
                for u in range(ow):
                    q = 2 * u + 1 - pw
                    if 0 <= q < wd:
                        do[u] = src[q]
            k = _taps(w[ch, 0])
            plane = out[b, ch]
            for i in range(oh):
                ae, ao = xe[2 * i], xo[2 * i]
                be, bo = xe[2 * i + 1], xo[2 * i + 1]
                ce, co = xe[2 * i + 2], xo[2 * i + 2]
                row = plane[i]
                for t in range(ow):
                    row[t] = _sum9(k, ae[t], ao[t], ae[t + 1], be[t], bo[t], be[t + 1],
                                   ce[t], co[t], ce[t + 1])


def _depthwise(x, w, out, strides, pads, dilations, mult) -> None:
    """A depthwise convolution in channel blocks on npuc's threads."""
    c = x.shape[1]
    wc = np.ascontiguousarray(w, dtype=out.dtype)
    step = threads.block(c)
    three = mult == 1 and w.shape[2:] == (3, 3) and tuple(dilations) == (1, 1)
    step1, step2 = three and tuple(strides) == (1, 1), three and tuple(strides) == (2, 2)

    def channels(i):
        c0, c1 = i * step, min(c, (i + 1) * step)
        xs, ws, os = x[:, c0:c1], wc[c0 * mult:c1 * mult], out[:, c0 * mult:c1 * mult]
        if step1:
            _depthwise3x3(xs, ws, os, pads[0], pads[1])
        elif step2:
            _depthwise3x3s2(xs, ws, os, pads[0], pads[1])
        else:
            _depthwise2d(xs, ws, os, strides[0], strides[1], pads[0], pads[1], dilations[0],
                         dilations[1], mult)

    threads.parallel(channels, -(-c // step))


def conv_nd(x, w, b=None, strides=None, pads=None, dilations=None, group=1, out=None):
    """Convolution of ``x`` (N, C, *spatial) with ``w`` (M, C/group, *kernel).

    ``pads`` is ``[begin..., end...]``; ``x`` may be any strided view. Floating point
    only (integer convolutions go through :func:`conv_integer`).
    """
    nd = x.ndim - 2
    strides = list(strides or [1] * nd)
    dilations = list(dilations or [1] * nd)
    pads = list(pads or [0] * (2 * nd))
    n, c = x.shape[:2]
    m = w.shape[0]
    kshape = w.shape[2:]
    oshape = conv_out_shape(x.shape[2:], kshape, strides, pads, dilations)
    if out is None:
        out = np.empty((n, m, *oshape), dtype=np.result_type(x.dtype, w.dtype))
    if group == c and w.shape[1] == 1 and nd == 2 and group > 1:
        _depthwise(x, w, out, strides, pads, dilations, m // c)
    else:
        pointwise = all(k == 1 for k in kshape) and not any(pads) and all(s == 1 for s in strides)
        if pointwise:
            cols = x.reshape(n, group, c // group, -1)
        else:  # gathered straight into the type the product accumulates in
            cols = im2col(x, kshape, strides, pads, dilations, oshape,
                          accumulate.product_type(out.dtype) if out.dtype.kind == "f"
                          else out.dtype)
            cols = cols.reshape(n, group, (c // group) * int(np.prod(kshape)), -1)
        wm = w.reshape(group, m // group, -1)
        accumulate.matmul(wm, cols, out=out)
    if b is not None:
        out += b.reshape((1, m) + (1,) * nd)
    return out


def conv_transpose_nd(x, w, b=None, strides=None, pads=None, dilations=None, group=1,
                      out_shape=None):
    """Transposed convolution: ``w`` is (C, M/group, *kernel); pads trim the full output."""
    nd = x.ndim - 2
    strides = list(strides or [1] * nd)
    dilations = list(dilations or [1] * nd)
    pads = list(pads or [0] * (2 * nd))
    n, c = x.shape[:2]
    kshape = w.shape[2:]
    m = w.shape[1] * group
    wm = w.reshape(group, c // group, -1).transpose(0, 2, 1)
    cols = accumulate.matmul(wm, x.reshape(n, group, c // group, -1))
    cols = cols.reshape(n, m, *kshape, *x.shape[2:])
    out = np.zeros((n, m, *out_shape), dtype=np.result_type(x.dtype, w.dtype))
    col2im_add(cols, out, strides, pads, dilations)
    if b is not None:
        out += b.reshape((1, m) + (1,) * nd)
    return out


@kernel("Conv")
def conv(inputs, attrs, ctx):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    if x.dtype.kind != "f":
        raise unsupported(ctx, f"Conv on {x.dtype}")
    strides, pads, dilations = conv_geometry(x, w, attrs, ctx)
    return [conv_nd(x, w, b, strides, pads, dilations, attrs.get("group", 1))]


@kernel("ConvTranspose")
@accepts("float")
def conv_transpose(inputs, attrs, ctx):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    nd = x.ndim - 2
    kshape = list(attrs.get("kernel_shape") or w.shape[2:])
    strides = list(attrs.get("strides") or [1] * nd)
    dilations = list(attrs.get("dilations") or [1] * nd)
    out_pad = list(attrs.get("output_padding") or [0] * nd)[:nd]
    auto_pad = attrs.get("auto_pad", "NOTSET")
    full = [strides[d] * (x.shape[2 + d] - 1) + out_pad[d] + (kshape[d] - 1) * dilations[d] + 1
            for d in range(nd)]
    out_shape = attrs.get("output_shape")
    if out_shape is not None:
        out_shape = list(out_shape)[-nd:]
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise unsupported(ctx, f"auto_pad {auto_pad!r}")
    pads = attrs.get("pads")
    if pads is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = out_shape or [x.shape[2 + d] * strides[d] for d in range(nd)]
        total = [full[d] - target[d] for d in range(nd)]
        small = [t // 2 for t in total]
        if auto_pad == "SAME_UPPER":
            pads = small + [t - s for t, s in zip(total, small)]
        else:
            pads = [t - s for t, s in zip(total, small)] + small
        out_shape = target
    pads = list(pads or [0] * (2 * nd))
    if out_shape is None:
        out_shape = [full[d] - pads[d] - pads[d + nd] for d in range(nd)]
    return [conv_transpose_nd(x, w, b, strides, pads, dilations, attrs.get("group", 1), out_shape)]


@kernel("Col2Im")
@accepts("float", "int")
def col2im_kernel(inputs, attrs, ctx):
    data, image_shape, block_shape = inputs
    image_shape = [int(v) for v in image_shape]
    block_shape = [int(v) for v in block_shape]
    nd = len(image_shape)
    strides = list(attrs.get("strides") or [1] * nd)
    dilations = list(attrs.get("dilations") or [1] * nd)
    pads = list(attrs.get("pads") or [0] * (2 * nd))
    n = data.shape[0]
    kprod = int(np.prod(block_shape))
    c = data.shape[1] // kprod
    in_shape = conv_out_shape(image_shape, block_shape, strides, pads, dilations)
    cols = data.reshape(n, c, *block_shape, *in_shape)
    out = np.zeros((n, c, *image_shape), dtype=data.dtype)
    return [col2im_add(cols, out, strides, pads, dilations)]

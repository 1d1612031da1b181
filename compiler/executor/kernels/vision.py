"""Sampling and detection operators: GridSample, RoiAlign, NonMaxSuppression, DeformConv.

GridSample and DeformConv are gathers at computed coordinates, vectorised with numpy over
all sample points (one gather per interpolation corner). RoiAlign loops over regions and
bins in Numba, following onnxruntime's bilinear rules (samples beyond one pixel outside
the map read zero; ``max`` mode takes the largest weighted corner, as onnxruntime does).
"""

from __future__ import annotations

import itertools

import numba as nb
import numpy as np

from . import kernel
from .checks import accepts, unsupported
from .windows import conv_out_shape


def _reflect(x, lo, hi):
    """Fold coordinates into [lo, hi] by mirroring at the borders."""
    rng = hi - lo
    if rng <= 0:
        return np.full_like(x, lo)
    below, above = x < lo, x > hi
    d = np.where(below, lo - x, np.where(above, x - hi, 0.0))
    n = np.floor(d / rng)
    r = d - n * rng
    even = n % 2 == 0
    return np.where(below, np.where(even, lo + r, hi - r),
                    np.where(above, np.where(even, hi - r, lo + r), x))


def _cubic_weights(t, a=-0.75):
    t1, t2, t3 = t + 1, t, 1 - t
    return [((a * t1 - 5 * a) * t1 + 8 * a) * t1 - 4 * a,
            ((a + 2) * t2 - (a + 3)) * t2 * t2 + 1,
            ((a + 2) * t3 - (a + 3)) * t3 * t3 + 1,
            ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]


@kernel("GridSample")
@accepts("float")
def grid_sample(inputs, attrs, ctx):
    x, grid = inputs
    given = attrs.get("mode", "linear" if ctx.opset >= 20 else "bilinear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(given, attrs.get("mode", "linear"))
    pad = attrs.get("padding_mode", "zeros")
    align = attrs.get("align_corners", 0)
    if mode not in ("linear", "nearest", "cubic") or pad not in ("zeros", "border", "reflection"):
        raise unsupported(ctx, f"GridSample mode {mode!r} with padding {pad!r}")
    n, c = x.shape[:2]
    dims = x.shape[2:]
    nd = len(dims)
    g = grid.astype(np.float64)[..., ::-1]  # grid lists coordinates innermost-first
    coords, lo, hi = [], [], []
    for d in range(nd):
        v = (g[..., d] + 1) / 2 * (dims[d] - 1) if align else ((g[..., d] + 1) * dims[d] - 1) / 2
        lo.append(0.0 if align else -0.5)
        hi.append(dims[d] - 1.0 if align else dims[d] - 0.5)
        if mode == "nearest":
            v = np.rint(v)
        if pad == "border":
            v = np.where((v < lo[d]) | (v > hi[d]), np.clip(v, 0, dims[d] - 1), v)
        elif pad == "reflection":
            v = _reflect(v, lo[d], hi[d])
        coords.append(v)
    if mode == "nearest":
        taps = [[(np.trunc(v).astype(np.int64), 1.0)] for v in coords]
    elif mode == "linear":
        taps = []
        for v in coords:
            f = np.floor(v)
            taps.append([(f.astype(np.int64), 1 - (v - f)), (f.astype(np.int64) + 1, v - f)])
    else:
        taps = []
        for v in coords:
            f = np.floor(v)
            w = _cubic_weights(v - f)
            taps.append([(f.astype(np.int64) + k - 1, w[k]) for k in range(4)])
    out = np.zeros((n, c) + grid.shape[1:-1], dtype=np.float64)
    bidx = np.arange(n).reshape((n,) + (1,) * (grid.ndim - 2))
    xt = np.moveaxis(x, 1, -1)  # gather whole channel vectors at once
    for combo in itertools.product(*taps):
        weight = np.ones(grid.shape[:-1])
        valid = np.ones(grid.shape[:-1], dtype=bool)
        idx = []
        for d, (i, w) in enumerate(combo):
            weight = weight * w
            if pad == "zeros":
                valid &= (i >= 0) & (i < dims[d])
            elif pad == "reflection" and mode != "nearest":
                i = _reflect(i.astype(np.float64), lo[d], hi[d]).astype(np.int64)
            idx.append(np.clip(i, 0, dims[d] - 1))
        vals = xt[(bidx, *idx)] * np.where(valid, weight, 0.0)[..., None]
        out += np.moveaxis(vals, -1, 1)
    return [out.astype(x.dtype)]


@nb.njit(cache=True)
def _bilinear(fm, h, w, y, x):
    """onnxruntime's RoiAlign sample: the 4 weighted corners (zeros when far outside)."""
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0
    y = max(y, 0.0)
    x = max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    return y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1, hy * hx, hy * lx, ly * hx, ly * lx


@nb.njit(cache=True)
def _roi_align(x, rois, batch, out, scale, sampling, is_max, half_pixel):
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = out.shape[2], out.shape[3]
    off = 0.5 if half_pixel else 0.0
    for r in range(rois.shape[0]):
        fm = x[batch[r]].reshape(c, h * w)
        x1, y1 = rois[r, 0] * scale - off, rois[r, 1] * scale - off
        x2, y2 = rois[r, 2] * scale - off, rois[r, 3] * scale - off
        rw, rh = x2 - x1, y2 - y1
        if not half_pixel:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / oh, rw / ow
        gh = sampling if sampling > 0 else int(np.ceil(rh / oh))
        gw = sampling if sampling > 0 else int(np.ceil(rw / ow))
        count = max(gh * gw, 1)
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    acc = 0.0
                    best = -np.inf
                    for iy in range(gh):
                        yy = y1 + i * bh + (iy + 0.5) * bh / gh
                        for ix in range(gw):
                            xx = x1 + j * bw + (ix + 0.5) * bw / gw
                            p1, p2, p3, p4, w1, w2, w3, w4 = _bilinear(fm, h, w, yy, xx)
                            if is_max:
                                v = max(max(w1 * fm[ch, p1], w2 * fm[ch, p2]),
                                        max(w3 * fm[ch, p3], w4 * fm[ch, p4]))
                                best = max(best, v)
                            else:
                                acc += (w1 * fm[ch, p1] + w2 * fm[ch, p2]
                                        + w3 * fm[ch, p3] + w4 * fm[ch, p4])
                    out[r, ch, i, j] = best if is_max else acc / count


@kernel("RoiAlign")
@accepts("float")
def roi_align(inputs, attrs, ctx):
    x, rois, batch = inputs
    mode = attrs.get("mode", "avg")
    default_ctm = "half_pixel" if ctx.opset >= 16 else "output_half_pixel"
    ctm = attrs.get("coordinate_transformation_mode", default_ctm)
    if mode not in ("avg", "max") or ctm not in ("half_pixel", "output_half_pixel"):
        raise unsupported(ctx, f"RoiAlign mode {mode!r} with {ctm!r}")
    oh, ow = attrs.get("output_height", 1), attrs.get("output_width", 1)
    out = np.empty((rois.shape[0], x.shape[1], oh, ow), dtype=np.float64)
    _roi_align(np.ascontiguousarray(x, dtype=np.float64), rois.astype(np.float64),
               batch.astype(np.int64), out, float(attrs.get("spatial_scale", 1.0)),
               int(attrs.get("sampling_ratio", 0)), mode == "max", ctm == "half_pixel")
    return [out.astype(x.dtype)]


def _corners(boxes, center):
    if center:
        xc, yc, w, h = boxes.T
        return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)
    y1, x1, y2, x2 = boxes.T
    return np.stack([np.minimum(y1, y2), np.minimum(x1, x2), np.maximum(y1, y2), np.maximum(x1, x2)], axis=1)


@kernel("NonMaxSuppression")
def non_max_suppression(inputs, attrs, ctx):
    boxes, scores = inputs[0], inputs[1]

    def scalar(i, default):
        return np.asarray(inputs[i]).reshape(-1)[0] if len(inputs) > i and inputs[i] is not None else default

    max_out = int(scalar(2, 0))
    iou_th = float(scalar(3, 0.0))
    score_th = scalar(4, None)
    selected = []
    for b in range(scores.shape[0]):
        bx = _corners(boxes[b].astype(np.float64), attrs.get("center_point_box", 0))
        area = (bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1])
        for c in range(scores.shape[1]):
            s = scores[b, c]
            order = np.argsort(-s, kind="stable")
            if score_th is not None:
                order = order[s[order] > score_th]
            keep = []
            for i in order:
                if len(keep) >= max_out:
                    break
                if keep:
                    k = np.array(keep)
                    ih = np.minimum(bx[k, 2], bx[i, 2]) - np.maximum(bx[k, 0], bx[i, 0])
                    iw = np.minimum(bx[k, 3], bx[i, 3]) - np.maximum(bx[k, 1], bx[i, 1])
                    inter = np.maximum(ih, 0) * np.maximum(iw, 0)
                    union = area[k] + area[i] - inter
                    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
                    if (iou > iou_th).any():
                        continue
                keep.append(i)
            selected += [(b, c, i) for i in keep]
    return [np.array(selected, dtype=np.int64).reshape(-1, 3)]


def _bilinear_gather(x, y, xx):
    """Sample x (N, C, H, W) at float coords y, xx (N, *P): zero outside, bilinear inside."""
    n, _, h, w = x.shape
    y0, x0 = np.floor(y), np.floor(xx)
    out = 0.0
    bidx = np.arange(n).reshape((n,) + (1,) * (y.ndim - 1))
    xt = np.moveaxis(x, 1, -1)
    for dy in (0, 1):
        for dx in (0, 1):
            yi, xi = y0 + dy, x0 + dx
            wgt = (1 - np.abs(y - yi)) * (1 - np.abs(xx - xi))
            ok = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            v = xt[bidx, np.clip(yi, 0, h - 1).astype(np.int64), np.clip(xi, 0, w - 1).astype(np.int64)]
            out = out + v * np.where(ok, wgt, 0.0)[..., None]
    return np.moveaxis(out, -1, 1)  # (N, C, *P)


@kernel("DeformConv")
@accepts("float")
def deform_conv(inputs, attrs, ctx):
    x, w, offset = inputs[:3]
    b = inputs[3] if len(inputs) > 3 else None
    mask = inputs[4] if len(inputs) > 4 else None
    if x.ndim != 4:
        raise unsupported(ctx, f"DeformConv with {x.ndim - 2} spatial dimensions")
    n, c, h, wd = x.shape
    m = w.shape[0]
    kh, kw = attrs.get("kernel_shape") or w.shape[2:]
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    pads = attrs.get("pads", [0, 0, 0, 0])
    group, og = attrs.get("group", 1), attrs.get("offset_group", 1)
    oh, ow = conv_out_shape((h, wd), (kh, kw), (sh, sw), pads, (dh, dw))
    off = offset.reshape(n, og, kh, kw, 2, oh, ow).astype(np.float64)
    ky = (np.arange(kh) * dh)[:, None, None, None]
    kx = (np.arange(kw) * dw)[None, :, None, None]
    base_y = (np.arange(oh) * sh - pads[0])[None, None, :, None] + ky
    base_x = (np.arange(ow) * sw - pads[1])[None, None, None, :] + kx
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.float64)
    cpg = c // og
    for gi in range(og):
        ys = base_y[None] + off[:, gi, :, :, 0]
        xs = base_x[None] + off[:, gi, :, :, 1]
        cols[:, gi * cpg:(gi + 1) * cpg] = _bilinear_gather(
            x[:, gi * cpg:(gi + 1) * cpg].astype(np.float64), ys, xs)
    if mask is not None:
        mk = mask.reshape(n, og, 1, kh, kw, oh, ow).astype(np.float64)
        cols = (cols.reshape(n, og, cpg, kh, kw, oh, ow) * mk).reshape(cols.shape)
    cols = cols.reshape(n, group, (c // group) * kh * kw, oh * ow)
    y = np.matmul(w.reshape(group, m // group, -1).astype(np.float64), cols).reshape(n, m, oh, ow)
    if b is not None:
        y = y + b.reshape(1, m, 1, 1)
    return [y.astype(x.dtype)]

"""Pooling: MaxPool, AveragePool, LpPool, MaxUnpool, MaxRoiPool (the Global forms are in
``global_pool``).

Floating-point 2-D max and average pools (the common case) are in ``pool2d``; the
other pools (1-D and 3-D, LpPool, integers, MaxPool's Indices output) share one Numba loop
over a 3-D window (missing leading dimensions have size 1), which takes explicit begin
pads and output sizes so that it can run on a strided view of a tile with its halo.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .. import threads
from . import kernel
from .checks import accepts, unsupported
from .pool2d import AVG, LP, MAX, _pool2d_fast, lanes, max_pool2d_indices
from .windows import conv_pads


def pool_out_shape(in_shape, kernel_shape, strides, pads, dilations, ceil_mode, auto_pad):
    """Output spatial shape of a pool; ``pads`` are the (already resolved) begin/end pads."""
    nd = len(in_shape)
    out = []
    for d in range(nd):
        span = (kernel_shape[d] - 1) * dilations[d] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out.append(-(-in_shape[d] // strides[d]))
            continue
        if auto_pad == "VALID":
            out.append(-(-(in_shape[d] - span + 1) // strides[d]))
            continue
        total = in_shape[d] + pads[d] + pads[d + nd] - span
        if ceil_mode:
            o = -(-total // strides[d]) + 1
            # the last window must start inside the input or its begin padding
            if (o - 1) * strides[d] >= in_shape[d] + pads[d]:
                o -= 1
        else:
            o = total // strides[d] + 1
        out.append(o)
    return out


@nb.njit(cache=True, nogil=True)
def _pool3d(x, out, idx, q0, q1, mode, k, s, pb, pe, dl, count_pad, p, storage_order):
    """Pool rows [q0, q1) of x (NC, A, B, C) into out (NC, oA, oB, oC); idx gets argmax
    for MAX."""
    nc, ia, ib, ic = x.shape
    _, oa, ob, oc = out.shape
    for q in range(q0, q1):
        for a in range(oa):
            for b in range(ob):
                for c in range(oc):
                    a0 = a * s[0] - pb[0]
                    b0 = b * s[1] - pb[1]
                    c0 = c * s[2] - pb[2]
                    acc = 0.0
                    best = -np.inf
                    bi = -1
                    n_in = 0
                    n_pad = 0
                    for ka in range(k[0]):
                        xa = a0 + ka * dl[0]
                        if xa >= ia + pe[0]:
                            continue
                        for kb in range(k[1]):
                            xb = b0 + kb * dl[1]
                            if xb >= ib + pe[1]:
                                continue
                            for kc in range(k[2]):
                                xc = c0 + kc * dl[2]
                                if xc >= ic + pe[2]:
                                    continue
                                n_pad += 1
                                if xa < 0 or xb < 0 or xc < 0 or xa >= ia or xb >= ib or xc >= ic:
                                    continue
                                v = x[q, xa, xb, xc]
                                n_in += 1
                                if mode == MAX:  # from -inf: a NaN never wins
                                    if v > best or bi < 0:  # (else the first tap's index)
                                        best = v if v > best else best
                                        if storage_order == 0:
                                            bi = (xa * ib + xb) * ic + xc
                                        else:
                                            bi = xa + xb * ia + xc * ia * ib
                                elif mode == AVG:
                                    acc += v
                                else:
                                    acc += abs(v) ** p
                    if mode == MAX:
                        out[q, a, b, c] = best
                        idx[q, a, b, c] = q * ia * ib * ic + bi
                    elif mode == AVG:
                        div = n_pad if count_pad else n_in
                        out[q, a, b, c] = acc / div if div > 0 else 0.0
                    else:
                        out[q, a, b, c] = acc ** (1.0 / p)


def pool_nd(x, mode, kernel_shape, strides, pads, dilations, out_shape,
            count_include_pad=False, p=2.0, storage_order=0, out=None):
    """Pool ``x`` (N, C, *spatial) with explicit pads; returns (values, argmax indices)."""
    nd = x.ndim - 2
    n, c = x.shape[:2]
    lead = 3 - nd
    x3 = x.reshape((n * c,) + (1,) * lead + x.shape[2:])

    def three(v, fill):
        return np.array([fill] * lead + list(v), dtype=np.int64)

    if out is None:
        out = np.empty((n, c, *out_shape), dtype=x.dtype)
    o3 = out.reshape((n * c,) + (1,) * lead + tuple(out_shape))
    idx = np.empty(o3.shape if mode == MAX else (0, 0, 0, 0), dtype=np.int64)
    geometry = (three(kernel_shape, 1), three(strides, 1), three(pads[:nd], 0),
                three(pads[nd:], 0), three(dilations, 1), bool(count_include_pad), float(p),
                storage_order)
    step = threads.block(n * c)
    threads.parallel(lambda i: _pool3d(x3, o3, idx, i * step, min(n * c, (i + 1) * step), mode,
                                       *geometry), -(-(n * c) // step))
    if not np.shares_memory(o3, out):
        out[...] = o3.reshape(out.shape)
    return out, idx.reshape(out.shape) if mode == MAX else None


def _pool(inputs, attrs, ctx, mode):
    x = inputs[0]
    narrow = x.dtype if _is_narrow_float(x.dtype) else None
    if narrow is not None:  # float16, bfloat16, float8: pooled in float32, rounded once
        outs = _pool([x.astype(np.float32)] + list(inputs[1:]), attrs, ctx, mode)
        return [outs[0].astype(narrow)] + outs[1:]
    if x.dtype.kind not in "fiu" or (mode != MAX and x.dtype.kind != "f"):
        raise unsupported(ctx, f"{ctx.node.op_type if ctx.node else 'pooling'} on {x.dtype}")
    nd = x.ndim - 2
    kshape = list(attrs["kernel_shape"])
    strides = list(attrs.get("strides") or [1] * nd)
    dilations = list(attrs.get("dilations") or [1] * nd)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    pads = conv_pads(auto_pad, x.shape[2:], kshape, strides, dilations, attrs.get("pads"), ctx)
    oshape = pool_out_shape(x.shape[2:], kshape, strides, pads, dilations,
                            attrs.get("ceil_mode", 0), auto_pad)
    # Padding at the end only matters for which positions count_include_pad counts;
    # ceil_mode windows may reach past it and those positions never count.
    if x.ndim == 4 and x.dtype.kind == "f" and (mode == AVG or mode == MAX and ctx.num_outputs == 1):
        return [_pool2d_fast(x, mode, kshape, strides, pads, dilations, oshape,
                             bool(attrs.get("count_include_pad", 0)))]
    if x.ndim == 4 and mode == MAX and lanes(x) and attrs.get("storage_order", 0) in (0, 1):
        return list(max_pool2d_indices(x, kshape, strides, pads, dilations, oshape,
                                       attrs.get("storage_order", 0)))
    y, idx = pool_nd(x, mode, kshape, strides, pads, dilations, oshape,
                     attrs.get("count_include_pad", 0), attrs.get("p", 2),
                     attrs.get("storage_order", 0))
    if mode == MAX and ctx.num_outputs > 1:
        return [y, idx]
    return [y]


@kernel("MaxPool")
def max_pool(inputs, attrs, ctx):
    return _pool(inputs, attrs, ctx, MAX)


@kernel("AveragePool")
def average_pool(inputs, attrs, ctx):
    return _pool(inputs, attrs, ctx, AVG)


@kernel("LpPool")
@accepts("float")
def lp_pool(inputs, attrs, ctx):
    return _pool(inputs, attrs, ctx, LP)


def _is_narrow_float(dt) -> bool:
    return dt == np.float16 or (dt.kind == "V" and "float" in dt.name)


@kernel("MaxUnpool")
@accepts("float", "int")
def max_unpool(inputs, attrs, ctx):
    x, indices = inputs[0], inputs[1]
    shape = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    nd = x.ndim - 2
    kshape = list(attrs["kernel_shape"])
    strides = list(attrs.get("strides") or [1] * nd)
    pads = list(attrs.get("pads") or [0] * (2 * nd))
    inferred = list(x.shape[:2]) + [
        (x.shape[2 + d] - 1) * strides[d] - pads[d] - pads[d + nd] + kshape[d] for d in range(nd)]
    # Indices address the inferred shape; a larger output_shape pads at the end.
    flat = np.zeros(int(np.prod(inferred)), dtype=x.dtype)
    flat[indices.reshape(-1)] = x.reshape(-1)
    if shape is None:
        return [flat.reshape(inferred)]
    out = np.zeros([int(v) for v in shape], dtype=x.dtype)
    out[tuple(slice(0, i) for i in inferred)] = flat.reshape(inferred)
    return [out]


@nb.njit(cache=True)
def _max_roi_pool(x, rois, ph, pw, scale, out):
    for r in range(rois.shape[0]):
        b = int(rois[r, 0])
        x1 = int(np.round(rois[r, 1] * scale))
        y1 = int(np.round(rois[r, 2] * scale))
        x2 = int(np.round(rois[r, 3] * scale))
        y2 = int(np.round(rois[r, 4] * scale))
        rh = max(y2 - y1 + 1, 1)
        rw = max(x2 - x1 + 1, 1)
        h, w = x.shape[2], x.shape[3]
        for c in range(x.shape[1]):
            for i in range(ph):
                hs = min(max(int(np.floor(i * rh / ph)) + y1, 0), h)
                he = min(max(int(np.ceil((i + 1) * rh / ph)) + y1, 0), h)
                for j in range(pw):
                    ws = min(max(int(np.floor(j * rw / pw)) + x1, 0), w)
                    we = min(max(int(np.ceil((j + 1) * rw / pw)) + x1, 0), w)
                    best = -np.inf if he > hs and we > ws else 0.0
                    for yy in range(hs, he):
                        for xx in range(ws, we):
                            best = max(best, x[b, c, yy, xx])
                    out[r, c, i, j] = best


@kernel("MaxRoiPool")
@accepts("float", "int")
def max_roi_pool(inputs, attrs, ctx):
    x, rois = inputs
    ph, pw = attrs["pooled_shape"]
    out = np.empty((rois.shape[0], x.shape[1], ph, pw), dtype=x.dtype)
    _max_roi_pool(x, rois.astype(np.float64), ph, pw, float(attrs.get("spatial_scale", 1.0)), out)
    return [out]

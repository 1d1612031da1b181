"""Float32-products convolutions (2 spatial dimensions) as blocks of output positions.

An im2col of the whole image is a ``K x H*W`` buffer of many megabytes, written once and
read back by the product from memory, and a bias or an activation after the product is
one more pass over the output. Here each task of npuc's pool takes one block of output
positions (columns) of one image and group, and one block of output channels (rows):
it gathers only that block's columns into a per-thread buffer of a few megabytes (in
L3: BLAS packs it into L2 itself, and narrower blocks would have BLAS repack the whole
weight matrix once per block), multiplies it by the weight rows in one BLAS call, and
applies the epilogue (bias and activation, :class:`~.epilogue.Epilogue`) to the finished
tile while it is in cache. A 1x1 convolution with unit strides and no padding reads its
columns in place.

The blocks are a function of the shapes alone (:func:`column_blocks`,
:func:`row_blocks`), so the float32 sums, cut into BLAS calls the same way on any thread
count, have the same bits on 1, 2 or 3 threads.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np

from .. import threads
from .windows import _copy_every, _window_slices

COLUMN_BYTES = 1 << 22  # the gathered columns and result rows of one block (in L3)
MIN_COLUMNS, MAX_COLUMNS = 512, 4096  # narrower blocks repack the weights too often
MAX_ROWS = 512  # output channels of one BLAS call
SHORT_ROWS = 16  # output rows shorter than this are gathered by numpy copies


def column_blocks(p: int, k: int, m: int) -> list[tuple[int, int]]:
    """The blocks ``[p0, p1)`` of ``p`` output positions whose ``k`` gathered rows and
    ``m`` result rows each take about :data:`COLUMN_BYTES`: balanced, widths a multiple
    of 16 (BLAS's vector width) but the last."""
    width = min(MAX_COLUMNS, max(MIN_COLUMNS, COLUMN_BYTES // (4 * max(k + m, 1))))
    per = -(-p // -(-p // width)) if p else 1
    width = min(p, -(-per // 16) * 16) or 1
    return [(p0, min(p, p0 + width)) for p0 in range(0, max(p, 1), width)]


def row_blocks(m: int) -> list[tuple[int, int]]:
    """The blocks of ``m`` output channels of one BLAS call each (balanced)."""
    rows = -(-m // -(-m // MAX_ROWS)) if m else 1
    return [(r0, min(m, r0 + rows)) for r0 in range(0, max(m, 1), rows)]


_local = threading.local()


def _scratch(size: int) -> np.ndarray:
    """A float32 buffer of at least ``size`` elements owned by the calling thread, reused
    across calls (a fresh one per block would cost its page faults each time)."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.size < size:
        buf = _local.buf = np.empty(max(size, 1 << 16), np.float32)
    return buf[:size]


def conv2d_columns(x, w, out, strides, pads, dilations, group, epilogue=None) -> None:
    """``out`` (N, M, OH, OW, float32, contiguous) = the convolution of ``x`` (N, C, H, W)
    with ``w`` (M, C/group, KH, KW), float32 products, then ``epilogue`` (called as
    ``accumulate.matmul`` calls it, on the result seen as ``(N, M, OH*OW)``)."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = out.shape[2], out.shape[3]
    p, mg, k = oh * ow, m // group, cg * kh * kw
    x = x if x.dtype == np.float32 else x.astype(np.float32)
    wm = w.reshape(group, mg, k)
    wm = wm if wm.dtype == np.float32 else wm.astype(np.float32)
    pointwise = kh == kw == 1 and not any(pads) and list(strides) == [1, 1]
    xs = x.reshape(n, c, h * wd) if pointwise else None
    o = out.reshape(n, m, p)
    flat = out.reshape(-1)
    fast = epilogue is not None and epilogue.fast()
    rows = row_blocks(mg)
    cols = column_blocks(p, k, rows[0][1])
    per_image = group * len(cols) * len(rows)

    def task(i):
        b, rest = divmod(i, per_image)
        g, rest = divmod(rest, len(cols) * len(rows))
        (p0, p1), (r0, r1) = cols[rest // len(rows)], rows[rest % len(rows)]
        if pointwise:
            src = xs[b, g * cg:(g + 1) * cg, p0:p1]
        elif p1 - p0 == p and ow < SHORT_ROWS:  # a whole image of short rows
            src = _scratch(k * p).reshape(k, p)
            _gather_copies(x, src, b, g * cg, (kh, kw), strides, pads, dilations, (oh, ow))
        else:
            src = _scratch(k * (p1 - p0)).reshape(k, p1 - p0)
            _gather(x, src, b, g * cg, kh, kw, p0, ow, strides[0], strides[1], pads[0], pads[1],
                    dilations[0], dilations[1])
        r0, r1 = g * mg + r0, g * mg + r1
        tile = o[b, r0:r1, p0:p1]
        np.matmul(wm[g, r0 - g * mg:r1 - g * mg], src, out=tile)
        if fast:
            epilogue.span(flat, (b * m + r0) * p + p0, p, r0, r1, p0, p1 - p0)
        elif epilogue is not None:
            epilogue(tile, (b,), slice(r0, r1), slice(p0, p1), o.shape)

    threads.parallel(task, n * per_image)


def _gather_copies(x, dst, b, c0, kshape, strides, pads, dilations, oshape) -> None:
    """:func:`_gather` of a whole image by one strided numpy copy per kernel offset (for
    rows shorter than :data:`SHORT_ROWS`, where a loop per row costs more than it moves)."""
    cg = dst.shape[0] // (kshape[0] * kshape[1])
    d = dst.reshape(cg, *kshape, *oshape)
    if any(pads):
        d.fill(0)  # what padding reads
    every = (slice(None),)
    for ks, image, window in _window_slices(kshape, strides, pads, dilations, oshape,
                                            x.shape[2:]):
        d[every + ks + tuple(window)] = x[(b, slice(c0, c0 + cg)) + tuple(image)]


@nb.njit(cache=True, nogil=True)
def _gather(x, dst, b, c0, kh, kw, p0, ow, sh, sw, ph, pw, dh, dw):
    """dst[(ch * kh + ki) * kw + kj, q] = x[b, c0 + ch, i * sh + ki * dh - ph,
    j * sw + kj * dw - pw] for output position i * ow + j = p0 + q (zero outside x)."""
    h, wd = x.shape[2], x.shape[3]
    cg = dst.shape[0] // (kh * kw)
    p1 = p0 + dst.shape[1]
    i0, i1 = p0 // ow, (p1 - 1) // ow + 1
    for ch in range(cg):
        for ki in range(kh):
            for kj in range(kw):
                row = dst[(ch * kh + ki) * kw + kj]
                off = kj * dw - pw
                j0 = min(ow, max(0, -(off // sw)))
                j1 = max(j0, min(ow, (wd - 1 - off) // sw + 1)) if wd - 1 - off >= 0 else j0
                for i in range(i0, i1):
                    a, e = max(0, p0 - i * ow), min(ow, p1 - i * ow)
                    seg = row[i * ow + a - p0:i * ow + e - p0]
                    r = i * sh + ki * dh - ph
                    lo, hi = max(a, j0), min(e, j1)
                    if r < 0 or r >= h or hi <= lo:
                        seg[:] = 0
                        continue
                    seg[:lo - a] = 0
                    seg[hi - a:] = 0
                    _copy_every(seg[lo - a:hi - a], x[b, c0 + ch, r, lo * sw + off:], hi - lo, sw)

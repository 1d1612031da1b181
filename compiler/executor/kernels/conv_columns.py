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
MIN_ROWS = 32  # output channels of one BLAS call when a convolution's rows are split
SHORT_ROWS = 16  # output rows shorter than this are gathered by numpy copies
SHARED_BYTES = 1 << 25  # columns gathered once for several blocks of rows, at most
TASKS = 4  # blocks a convolution is cut into when its work allows (two threads balance)
MIN_TASK = 1 << 21  # multiply-adds of one block at least (about 60 us on one core)


def column_blocks(p: int, k: int, m: int, parts: int = 1) -> list[tuple[int, int]]:
    """The blocks ``[p0, p1)`` of ``p`` output positions whose ``k`` gathered rows and
    ``m`` result rows each take about :data:`COLUMN_BYTES`, and at least ``parts`` blocks
    while they stay :data:`MIN_COLUMNS` wide: balanced, widths a multiple of 16 (BLAS's
    vector width) but the last."""
    width = min(MAX_COLUMNS, max(MIN_COLUMNS, COLUMN_BYTES // (4 * max(k + m, 1))))
    width = min(width, max(MIN_COLUMNS, -(-p // max(parts, 1))))
    per = -(-p // -(-p // width)) if p else 1
    width = min(p, -(-per // 16) * 16) or 1
    return [(p0, min(p, p0 + width)) for p0 in range(0, max(p, 1), width)]


def row_blocks(m: int, parts: int = 1) -> list[tuple[int, int]]:
    """The blocks of ``m`` output channels of one BLAS call each (balanced): at most
    :data:`MAX_ROWS`, and at least ``parts`` blocks while they keep :data:`MIN_ROWS`
    (multiples of :data:`MIN_ROWS` but the last when split for ``parts``)."""
    count = max(-(-m // MAX_ROWS), min(max(parts, 1), m // MIN_ROWS))
    rows = -(-m // count) if m else 1
    if count > -(-m // MAX_ROWS):
        rows = -(-rows // MIN_ROWS) * MIN_ROWS
    return [(r0, min(m, r0 + rows)) for r0 in range(0, max(m, 1), rows)]


def plan(n: int, group: int, p: int, k: int, mg: int) -> tuple[list, list]:
    """(column blocks, row blocks) of a convolution of ``n`` images and ``group`` groups
    of ``mg`` output channels, ``p`` positions and ``k`` gathered rows each: up to
    :data:`TASKS` blocks of at least :data:`MIN_TASK` multiply-adds, by columns first,
    then by rows. A function of the shapes alone, never of the thread count."""
    units = n * group
    want = max(1, min(TASKS, n * group * p * k * mg // MIN_TASK))
    cols = column_blocks(p, k, min(mg, MAX_ROWS), -(-want // units))
    rows = row_blocks(mg, -(-want // (units * len(cols))))
    return cols, rows


_local = threading.local()


def _scratch(size: int, name: str = "buf") -> np.ndarray:
    """A float32 buffer of at least ``size`` elements owned by the calling thread, reused
    across calls (a fresh one per block would cost its page faults each time)."""
    buf = getattr(_local, name, None)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1 << 16), np.float32)
        setattr(_local, name, buf)
    return buf[:size]


def conv2d_columns(x, w, out, strides, pads, dilations, group, epilogue=None) -> None:
    """``out`` (N, M, OH, OW, float32, contiguous) = the convolution of ``x`` (N, C, H, W)
    with ``w`` (M, C/group, KH, KW), float32 products, then ``epilogue`` (called as
    ``accumulate.matmul`` calls it, on the result seen as ``(N, M, OH*OW)``).

    A block gathers its own columns into a buffer of its thread; when blocks of rows
    share a block of columns, all the columns are gathered once first (in channel
    blocks on the pool) into one buffer that the products then read, unless it would
    take more than :data:`SHARED_BYTES`."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = out.shape[2], out.shape[3]
    p, mg, k = oh * ow, m // group, cg * kh * kw
    x = x if x.dtype == np.float32 else x.astype(np.float32)
    wm = w.reshape(group, mg, k)
    wm = wm if wm.dtype == np.float32 else wm.astype(np.float32)
    pointwise = kh == kw == 1 and not any(pads) and list(strides) == [1, 1]
    cols, rows = plan(n, group, p, k, mg)
    geometry = (x, (kh, kw), (oh, ow), strides, pads, dilations)
    if pointwise:  # the columns are the image itself
        xs = x.reshape(n, c, h * wd)

        def columns(b, g, ci):
            return xs[b, g * cg:(g + 1) * cg, cols[ci][0]:cols[ci][1]]
    elif len(rows) > 1 and 4 * n * group * k * p <= SHARED_BYTES:
        columns = _gather_shared(geometry, n, group, cols, k)
    else:
        def columns(b, g, ci):
            p0, p1 = cols[ci]
            src = _scratch(k * (p1 - p0)).reshape(k, p1 - p0)
            _gather_block(geometry, src, b, g * cg, p0, p1)
            return src
    _products(wm, columns, out.reshape(n, m, p), cols, rows, epilogue)


def _products(wm, columns, o, cols, rows, epilogue) -> None:
    """Every block's BLAS call on the pool, then its epilogue in cache."""
    n, m, p = o.shape
    group, mg = wm.shape[:2]
    flat = o.reshape(-1)
    fast = epilogue is not None and epilogue.fast()
    per_image = group * len(cols) * len(rows)

    def task(i):
        b, rest = divmod(i, per_image)
        g, rest = divmod(rest, len(cols) * len(rows))
        ci, ri = divmod(rest, len(rows))
        (p0, p1), (r0, r1) = cols[ci], rows[ri]
        src = columns(b, g, ci)
        tile = o[b, g * mg + r0:g * mg + r1, p0:p1]
        np.matmul(wm[g, r0:r1], src, out=tile)
        r0, r1 = g * mg + r0, g * mg + r1
        if fast:
            epilogue.span(flat, (b * m + r0) * p + p0, p, r0, r1, p0, p1 - p0)
        elif epilogue is not None:
            epilogue(tile, (b,), slice(r0, r1), slice(p0, p1), o.shape)

    threads.parallel(task, n * per_image)


def _gather_shared(geometry, n, group, cols, k):
    """Every block's columns gathered once into one buffer of the calling thread, in
    channel blocks on the pool; returns ``columns(b, g, ci)`` reading it."""
    x, (kh, kw), (oh, ow) = geometry[:3]
    cg, p = k // (kh * kw), oh * ow
    buf = _scratch(n * group * k * p, "shared")
    blocks = [(b, g, ci) for b in range(n) for g in range(group) for ci in range(len(cols))]
    chunks = min(cg, -(-TASKS // len(blocks)))
    step = -(-cg // chunks)

    def view(b, g, ci):
        p0, p1 = cols[ci]
        start = (b * group + g) * k * p + k * p0
        return buf[start:start + k * (p1 - p0)].reshape(k, p1 - p0)

    def gather(i):
        (b, g, ci), part = blocks[i // chunks], i % chunks
        c0, c1 = part * step, min(cg, (part + 1) * step)
        if c0 < c1:
            dst = view(b, g, ci)[c0 * kh * kw:c1 * kh * kw]
            _gather_block(geometry, dst, b, g * cg + c0, *cols[ci])

    threads.parallel(gather, len(blocks) * chunks)
    return view


def _gather_block(geometry, dst, b, c0, p0, p1) -> None:
    """The columns of positions ``[p0, p1)`` of image ``b``, channels from ``c0`` (as
    many as ``dst`` has rows for), into ``dst``."""
    x, (kh, kw), (oh, ow), strides, pads, dilations = geometry
    (sh, sw), (dh, dw) = strides, dilations
    if p1 - p0 == oh * ow and ow < SHORT_ROWS:  # a whole image of short rows
        _gather_copies(x, dst, b, c0, (kh, kw), strides, pads, dilations, (oh, ow))
    elif kh * kw > 1:
        rl = ((oh - 1) * sh + (kh - 1) * dh) // sh + 1
        ul = ((ow - 1) * sw + (kw - 1) * dw) // sw + 1
        phases = _scratch(sh * sw * rl * ul, "phases").reshape(sh, sw, rl, ul)
        _gather_phases(x, dst, phases, b, c0, kh, kw, p0, ow, sh, sw, pads[0], pads[1], dh, dw)
    else:  # one tap: copied straight from the rows of x
        _gather(x, dst, b, c0, kh, kw, p0, ow, sh, sw, pads[0], pads[1], dh, dw)


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


@nb.njit(cache=True, nogil=True)
def _gather_phases(x, dst, buf, b, c0, kh, kw, p0, ow, sh, sw, ph, pw, dh, dw):
    """What :func:`_gather` writes, through the zero-padded phase planes of each input
    plane (``buf[pr, pc, R, U]`` = padded position ``(R * sh + pr, U * sw + pc)``, the
    rows the block reads only): every kernel tap then reads each output row as one
    contiguous run, without bounds tests or strided loads (1.2 to 2.5 times faster than
    :func:`_gather` for kernels of more than one tap)."""
    h, wd = x.shape[2], x.shape[3]
    rl, ul = buf.shape[2], buf.shape[3]
    cg = dst.shape[0] // (kh * kw)
    p1 = p0 + dst.shape[1]
    i0, i1 = p0 // ow, (p1 - 1) // ow + 1
    lo, hi = i0 * sh, min(rl * sh, (i1 - 1) * sh + (kh - 1) * dh + 1)
    buf[:] = 0  # the padding; no plane writes there
    for ch in range(cg):
        for r in range(max(lo, ph), min(hi, h + ph)):
            src = x[b, c0 + ch, r - ph]
            for pc in range(sw):
                u0 = max(0, -((pc - pw) // sw))
                u1 = min(ul, (wd - 1 + pw - pc) // sw + 1)
                if u1 > u0:
                    _copy_every(buf[r % sh, pc, r // sh, u0:u1], src[u0 * sw + pc - pw:],
                                u1 - u0, sw)
        for ki in range(kh):
            pr, r0 = (ki * dh) % sh, (ki * dh) // sh
            for kj in range(kw):
                pc, u = (kj * dw) % sw, (kj * dw) // sw
                row = dst[(ch * kh + ki) * kw + kj]
                for i in range(i0, i1):
                    a, e = max(0, p0 - i * ow), min(ow, p1 - i * ow)
                    src = buf[pr, pc, i + r0, u + a:u + e]
                    seg = row[i * ow + a - p0:i * ow + e - p0]
                    for t in range(e - a):
                        seg[t] = src[t]

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
columns in place. A product of at most :data:`TILES_MAX_K` terms runs as register tiles
instead (:mod:`.tiles32`), its epilogue applied in registers when it is a clamp.

The blocks are a function of the shapes alone (:func:`column_blocks`,
:func:`row_blocks`), so the float32 sums, cut into BLAS calls the same way on any thread
count, have the same bits on 1, 2 or 3 threads (the tiles' sums do not depend on the
blocks at all).
"""

from __future__ import annotations

import numpy as np

from .. import threads
from . import conv_tasks, tiles32
from .conv_gather import gather_block, scratch

COLUMN_BYTES = 1 << 22  # the gathered columns and result rows of one block (in L3)
MIN_COLUMNS, MAX_COLUMNS = 512, 4096  # narrower blocks repack the weights too often
# products summing over at most this many terms (1x1 convolutions of few input channels,
# the 7x7 stem) run as register tiles (tiles32): in MobileNetV2 1.1-1.3x faster than
# OpenBLAS, which packs both operands on each call, and 7-20% faster on ResNet-50's 1x1
# convolutions of 64 to 256 channels (whole runs, paired: ResNet-50 1-4% faster than
# with 32 here, MobileNetV2 3%); with more terms OpenBLAS was as fast or faster (5-15%
# on ResNet-50's 3x3 and wide 1x1 convolutions)
TILES_MAX_K = 256
MAX_ROWS = 512  # output channels of one BLAS call
MIN_ROWS = 32  # output channels of one BLAS call when a convolution's rows are split
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
    units = max(1, n * group)  # (no image: one empty block)
    want = max(1, min(TASKS, n * group * p * k * mg // MIN_TASK))
    cols = column_blocks(p, k, min(mg, MAX_ROWS), -(-want // units))
    rows = row_blocks(mg, -(-want // (units * len(cols))))
    return cols, rows


def blocks_of(x_shape, w_shape, out_spatial, group: int) -> tuple[list, list]:
    """:func:`plan` of a convolution of an input of ``x_shape`` with weights of
    ``w_shape`` and an output of ``out_spatial`` positions (height, width)."""
    n, m, kh, kw = x_shape[0], w_shape[0], w_shape[2], w_shape[3]
    return plan(n, group, out_spatial[0] * out_spatial[1], w_shape[1] * kh * kw, m // group)


def conv2d_columns(x, w, out, strides, pads, dilations, group, epilogue=None,
                   blocks=None) -> None:
    """``out`` (N, M, OH, OW, float32, contiguous) = the convolution of ``x`` (N, C, H, W)
    with ``w`` (M, C/group, KH, KW), float32 products, then ``epilogue`` (called as
    ``accumulate.matmul`` calls it, on the result seen as ``(N, M, OH*OW)``).

    A block gathers its own columns into a buffer of its thread; when blocks of rows
    share a block of columns, all the columns are gathered once first (in channel
    blocks on the pool) into one buffer that the products then read, unless it would
    take more than :data:`SHARED_BYTES`. ``blocks``: :func:`blocks_of` the shapes, when
    known."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    oh, ow = out.shape[2], out.shape[3]
    p, mg, k = oh * ow, m // group, cg * kh * kw
    x = x if x.dtype == np.float32 else x.astype(np.float32)
    wm = w.reshape(group, mg, k)
    wm = wm if wm.dtype == np.float32 else wm.astype(np.float32)
    pointwise = kh == kw == 1 and not any(pads) and list(strides) == [1, 1]
    geometry = (x, (kh, kw), (oh, ow), strides, pads, dilations)
    cols, rows = blocks if blocks is not None else plan(n, group, p, k, mg)
    spans = None
    if pointwise:  # the columns are the image itself
        xs = x.reshape(n, c, h * wd)

        def columns(b, g, ci):
            return xs[b, g * cg:(g + 1) * cg, cols[ci][0]:cols[ci][1]]

        if xs.flags.c_contiguous:  # the register tiles read them in place
            tiled = 0 < k <= TILES_MAX_K and wm.flags.c_contiguous
            if conv_tasks.pointwise(wm, xs, out.reshape(n, m, p), cols, rows, epilogue, tiled):
                return  # (the same blocks, without the interpreter: conv_tasks.py)
            whole = xs.reshape(-1)

            def spans(b, g, ci):
                return whole, (b * c + g * cg) * h * wd + cols[ci][0], h * wd
    elif len(rows) > 1 and 4 * n * group * k * p <= SHARED_BYTES:
        columns = _gather_shared(geometry, n, group, cols, k)
    else:
        def columns(b, g, ci):
            p0, p1 = cols[ci]
            src = scratch(k * (p1 - p0)).reshape(k, p1 - p0)
            gather_block(geometry, src, b, g * cg, p0, p1)
            return src
    _products(wm, columns, out.reshape(n, m, p), cols, rows, epilogue, spans)


def _products(wm, columns, o, cols, rows, epilogue, spans=None) -> None:
    """Every block's product on the pool (one BLAS call, or register tiles when it sums
    few terms), then its epilogue in cache. ``spans(b, g, ci)``, when given, is where
    ``columns(b, g, ci)`` lies in a flat array: ``(array, first, row step)`` (else the
    columns are contiguous)."""
    n, m, p = o.shape
    group, mg = wm.shape[:2]
    flat = o.reshape(-1)
    fast = epilogue is not None and epilogue.fast()
    per_image = group * len(cols) * len(rows)
    # few terms: register tiles, with the epilogue in registers when it is a clamp (the
    # product is computed the same way with any epilogue: a FusedConv is its Conv)
    tiled = 0 < wm.shape[2] <= TILES_MAX_K and wm.flags.c_contiguous
    if tiled:
        none = np.empty(0, np.float32)
        parts = None if epilogue is None else epilogue.tiles()
        bias, res, lo, hi, flags = parts or (none, none, 1, 0, 0)
        weights, k = wm.reshape(-1), wm.shape[2]

    def task(i):
        b, rest = divmod(i, per_image)
        g, rest = divmod(rest, len(cols) * len(rows))
        ci, ri = divmod(rest, len(rows))
        (p0, p1), (r0, r1) = cols[ci], rows[ri]
        if tiled:
            if spans is not None:
                src, first, step = spans(b, g, ci)
            else:
                src = columns(b, g, ci)
                src, first, step = src.reshape(-1), 0, src.shape[1]
            at = (b * m + g * mg + r0) * p + p0
            tiles32.gemm(weights, (g * mg + r0) * k, k, r1 - r0, k, src, first, step, p1 - p0,
                         flat, at, p, bias[g * mg + r0:] if len(bias) else bias, res, lo, hi,
                         flags)  # (the residual laid out as the result)
            if parts is not None or epilogue is None:
                return
            tile = o[b, g * mg + r0:g * mg + r1, p0:p1]
        else:
            tile = o[b, g * mg + r0:g * mg + r1, p0:p1]
            np.matmul(wm[g, r0:r1], columns(b, g, ci), out=tile)
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
    buf = scratch(n * group * k * p, "shared")
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
            gather_block(geometry, dst, b, g * cg + c0, *cols[ci])

    threads.parallel(gather, len(blocks) * chunks)
    return view

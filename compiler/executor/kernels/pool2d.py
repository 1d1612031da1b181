"""Floating-point 2-D max and average pools, the common case of ``pool``.

With a stride above 1 and output rows of 16 or more, loops run along output rows straight
into the output (:func:`_pool2d_rows`); with stride 1, or shorter rows, each plane is
copied into padded phase planes and every kernel tap is one long loop over the plane
(:func:`_pool2d_planes`); output planes of at most 64 elements are copied so a group of
planes at a time, and each tap is one loop over the group (:func:`_pool2d_batch`). All
three run in blocks of planes on npuc's threads and give the bits of the general loop
(``pool._pool3d``): taps in row-major kernel order, from -inf or +0.0, in the input type,
then one division for averages.
"""

from __future__ import annotations

import functools

import numba as nb
import numpy as np

from .. import threads
from . import pool_lanes
from .windows import _copy_every, pad_phases

MAX, AVG, LP = 0, 1, 2
LANES_ON = True


U = np.uint64  # unsigned offsets: indexing skips the negative-index test, loops vectorise


@nb.njit(cache=True, nogil=True, inline="always")
def _take(a, v, is_max):
    """One tap: the running maximum (``v`` wins only if greater, so NaN never does) or sum."""
    if is_max:
        return v if v > a else a
    return a + v


@nb.njit(cache=True, nogil=True, inline="always")
def _tap(of, o, xf, t, n, dd, is_max):
    """``of[o]`` takes ``n`` (1 to 3, a literal) taps ``xf[t]``, ``xf[t + dd]``, ..."""
    a = _take(of[U(o)], xf[U(t)], is_max)
    if n >= 2:
        a = _take(a, xf[U(t + dd)], is_max)
    if n >= 3:
        a = _take(a, xf[U(t + 2 * dd)], is_max)
    of[U(o)] = a


@nb.njit(cache=True, nogil=True, inline="always")
def _columns(of, o, xf, q, j0, j1, step, n, dd, is_max):
    """Columns [j0, j1) of the output row at ``of[o]`` take ``n`` taps each, column j's
    first at ``xf[q + j * step]``. Literal steps, so that the loops vectorise; stride 1
    in blocks of 8 columns, which vectorise also in rows too short for the vectoriser's
    own unrolled loop."""
    if step == 1:
        b = j0
        while b + 8 <= j1:
            for u in range(8):
                _tap(of, o + b + u, xf, q + b + u, n, dd, is_max)
            b += 8
        for j in range(b, j1):
            _tap(of, o + j, xf, q + j, n, dd, is_max)
    elif step == 2 and dd == 1:  # literal offsets: one interleaved read
        for j in range(j0, j1):
            _tap(of, o + j, xf, q + 2 * j, n, 1, is_max)
    elif step == 2:
        for j in range(j0, j1):
            _tap(of, o + j, xf, q + 2 * j, n, dd, is_max)
    else:
        for j in range(j0, j1):
            _tap(of, o + j, xf, q + j * step, n, dd, is_max)


@nb.njit(cache=True, nogil=True, inline="always")
def _row_taps(of, o, xf, q, j0, j1, step, kw, dw, is_max):
    """Output columns [j0, j1) of one output row at ``of[o:]`` take the kernel row's ``kw``
    taps from the input row at ``xf[q:]`` (column j reads ``q + j * step + kj * dw``), all
    inside the row: 2 and 3 taps in one pass, wider kernels one tap per pass."""
    if kw == 3:
        _columns(of, o, xf, q, j0, j1, step, 3, dw, is_max)
    elif kw == 2:
        _columns(of, o, xf, q, j0, j1, step, 2, dw, is_max)
    else:
        for kj in range(kw):
            _columns(of, o, xf, q + kj * dw, j0, j1, step, 1, dw, is_max)


@nb.njit(cache=True, nogil=True, inline="always")
def _edge_taps(of, o, xf, q, j0, j1, w, step, kw, dw, pw, is_max):
    """Like :func:`_row_taps` for columns some of whose taps fall outside the input row
    (which starts at ``xf[q]``): those are skipped."""
    for j in range(j0, j1):
        for kj in range(kw):
            c = j * step + kj * dw - pw
            if 0 <= c < w:
                of[U(o + j)] = _take(of[U(o + j)], xf[U(q + c)], is_max)


@nb.njit(cache=True, nogil=True, error_model="numpy")  # no zero test: divisions vectorise
def _pool2d_rows(xf, h, w, of, oh, ow, p0, p1, divf, is_max, kh, kw, sh, sw, ph, pw, dh, dw):
    """Max or average of 2-D windows over planes [p0, p1) of the flat C-ordered input
    ``xf`` (planes of h x w) into the flat output ``of`` (planes of oh x ow).

    Each output row is computed in place in ``of``: it starts at the identity of the
    reduction, then every kernel row inside the input adds its taps, in the kernel's
    row-major order (padding taps are skipped: -inf never wins a maximum and +0.0 leaves
    a sum started at +0.0 unchanged, so the bits are those of the padded definition).
    Columns whose taps are all inside the row (most) take them in one pass; the few at
    the edges tap by tap. Averages divide by ``divf`` (the counted positions of each
    window, flat oh x ow) once, in the input type."""
    if is_max:  # a literal for the loops: each compiles without the other's branch
        _rows(xf, h, w, of, oh, ow, p0, p1, divf, True, kh, kw, sh, sw, ph, pw, dh, dw)
    else:
        _rows(xf, h, w, of, oh, ow, p0, p1, divf, False, kh, kw, sh, sw, ph, pw, dh, dw)


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _rows(xf, h, w, of, oh, ow, p0, p1, divf, is_max, kh, kw, sh, sw, ph, pw, dh, dw):
    fill = -np.inf if is_max else 0.0
    span = (kw - 1) * dw
    ja = min(ow, (pw + sw - 1) // sw)  # first column whose first tap is inside
    jb = ja
    if w - 1 - span + pw >= 0:  # past the last column whose last tap is inside
        jb = max(ja, min(ow, (w - 1 - span + pw) // sw + 1))
    for p in range(p0, p1):
        xb, ob = p * h * w, p * oh * ow
        for i in range(oh):
            o = ob + i * ow
            for j in range(ow):
                of[U(o + j)] = fill
            for ki in range(kh):
                r = i * sh + ki * dh - ph
                if r < 0 or r >= h:
                    continue
                q = xb + r * w - pw
                _row_taps(of, o, xf, q, ja, jb, sw, kw, dw, is_max)
                _edge_taps(of, o, xf, q + pw, 0, ja, w, sw, kw, dw, pw, is_max)
                _edge_taps(of, o, xf, q + pw, jb, ow, w, sw, kw, dw, pw, is_max)
            if not is_max:
                d = i * ow
                for j in range(ow):
                    of[U(o + j)] = of[U(o + j)] / divf[U(d + j)]


@nb.njit(cache=True, nogil=True, error_model="numpy")  # no zero test: divisions vectorise
def _pool2d_planes(x, out, div, c0, c1, is_max, kh, kw, sh, sw, ph, pw, dh, dw):
    """Max or average of 2-D windows over channels [c0, c1), one plane at a time.

    Each plane is copied into padded phase planes (:func:`~.windows.pad_phases`), the padding
    holding the identity of the reduction (-inf, or +0.0, which leaves every sum started
    at +0.0 unchanged), so that a kernel tap is one long contiguous loop over all outputs
    of the plane (rows ``ul`` apart, the last ``ul - ow`` of each unused), which
    vectorises. Taps are applied row by row of the kernel, two per pass, in the input
    type; averages divide by ``div`` (the counted positions of each window). Maxima are
    written to the other of two buffers: a maximum stored back in place becomes a masked
    store, which is slow on AMD processors.
    """
    n = x.shape[0]
    oh, ow = out.shape[2], out.shape[3]
    rl = ((oh - 1) * sh + (kh - 1) * dh) // sh + 1
    ul = ((ow - 1) * sw + (kw - 1) * dw) // sw + 1
    fill = -np.inf if is_max else 0.0
    buf = np.full((sh, sw, rl, ul), fill, dtype=x.dtype)
    flat = buf.reshape(sh * sw * rl * ul)
    m = oh * ul - (ul - ow)
    acc, nxt = np.empty(m, dtype=out.dtype), np.empty(m, dtype=out.dtype)
    taps = np.empty(kh * kw, dtype=np.int64)  # where each tap's reads start in ``flat``
    for ki in range(kh):
        for kj in range(kw):
            pr, pc = (ki * dh) % sh, (kj * dw) % sw
            taps[ki * kw + kj] = ((pr * sw + pc) * rl + (ki * dh) // sh) * ul + (kj * dw) // sw
    dv = np.ones(m, dtype=out.dtype)  # the divisors in the layout of ``acc``
    if not is_max:
        for i in range(oh):
            for j in range(ow):
                dv[i * ul + j] = div[i, j]
    for b in range(n):
        for ch in range(c0, c1):
            pad_phases(x, b, ch, buf, sh, sw, ph, pw)
            acc[:] = fill
            for k in range(0, kh * kw, 2):
                s1 = flat[taps[k]:taps[k] + m]
                s2 = flat[taps[k + 1]:taps[k + 1] + m] if k + 1 < kh * kw else s1
                if is_max:
                    for e in range(m):
                        a, v = acc[e], s1[e]
                        a = v if v > a else a
                        v = s2[e]
                        nxt[e] = v if v > a else a
                    acc, nxt = nxt, acc
                elif k + 1 < kh * kw:
                    for e in range(m):
                        acc[e] = (acc[e] + s1[e]) + s2[e]
                else:
                    for e in range(m):
                        acc[e] += s1[e]
            if not is_max:
                for e in range(m):
                    acc[e] = acc[e] / dv[e]
            for i in range(oh):
                orow, arow = out[b, ch, i], acc[i * ul:i * ul + ow]
                for j in range(ow):
                    orow[j] = arow[j]


@nb.njit(cache=True, nogil=True, error_model="numpy")  # no zero test: divisions vectorise
def _pool2d_batch(xf, h, w, of, oh, ow, q0, q1, dvf, is_max, kh, kw, sh, sw, ph, pw, dh, dw):
    """Max or average of 2-D windows over planes [q0, q1) of the flat input ``xf`` (planes
    of h x w) into the flat output ``of`` (planes of oh x ow), a group of planes at a time.

    The group's planes are copied into padded phase planes laid out phase by phase (all
    the group's planes of one phase together), the padding holding the identity of the
    reduction (-inf, or +0.0, which leaves every sum started at +0.0 unchanged): a kernel
    tap is then one contiguous loop over the whole group, long enough to vectorise
    however small a plane is (a per-plane loop over 14 x 14 outputs spent its time
    starting and ending). Positions between the planes' rows are computed and dropped.
    Taps are applied two per pass in the kernel's row-major order, in the input type;
    averages divide by ``dvf`` (the counted positions of each window, flat oh x ow)."""
    if is_max:  # a literal for the loops: each compiles without the other's branch
        _batch(xf, h, w, of, oh, ow, q0, q1, dvf, True, kh, kw, sh, sw, ph, pw, dh, dw)
    else:
        _batch(xf, h, w, of, oh, ow, q0, q1, dvf, False, kh, kw, sh, sw, ph, pw, dh, dw)


GROUP_ELEMENTS = 1 << 15  # a group's phase planes and accumulators (in L2)
# Output planes of at most this many elements are pooled in groups (:func:`_pool2d_batch`):
# 1.1-1.4x faster than the per-plane loop on 7 x 7 and 8 x 8 outputs of hundreds of
# planes, even on a few planes or 4 x 4 outputs, even or slower above (one thread, quiet)
SMALL_PLANE = 64


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _batch(xf, h, w, of, oh, ow, q0, q1, dvf, is_max, kh, kw, sh, sw, ph, pw, dh, dw):
    rl = ((oh - 1) * sh + (kh - 1) * dh) // sh + 1  # rows of a phase plane
    ul = ((ow - 1) * sw + (kw - 1) * dw) // sw + 1  # and its columns
    r_ = rl * ul
    g = min(max(1, q1 - q0), max(1, GROUP_ELEMENTS // (r_ * (sh * sw + 2))))
    fill = -np.inf if is_max else 0.0
    buf = np.full(sh * sw * g * r_ + r_, fill, dtype=xf.dtype)  # + a tail the last reads
    acc, nxt = np.empty(g * r_, dtype=of.dtype), np.empty(g * r_, dtype=of.dtype)
    taps = np.empty(kh * kw + 1, dtype=np.int64)  # where each tap's reads start in ``buf``
    for ki in range(kh):
        for kj in range(kw):
            pr, pc = (ki * dh) % sh, (kj * dw) % sw
            taps[ki * kw + kj] = (pr * sw + pc) * g * r_ + (ki * dh) // sh * ul + (kj * dw) // sw
    taps[kh * kw] = taps[kh * kw - 1]  # an odd last tap is paired with itself
    for a0 in range(q0, q1, g):
        n = min(q1, a0 + g) - a0
        for p in range(n):
            xb = (a0 + p) * h * w
            for r in range(max(0, ph), min(h + ph, rl * sh)):
                pr, row = r % sh, r // sh
                for pc in range(sw):
                    u0 = max(0, -((pc - pw) // sw))
                    u1 = min(ul, (w - 1 + pw - pc) // sw + 1)
                    d = ((pr * sw + pc) * g + p) * r_ + row * ul
                    s = xb + (r - ph) * w + u0 * sw + pc - pw
                    if u1 > u0:
                        _copy_every(buf[d + u0:d + u1], xf[s:], u1 - u0, sw)
        m = n * r_
        for e in range(m):
            acc[U(e)] = fill
        for k in range(0, kh * kw, 2):
            t1, t2 = taps[k], taps[k + 1]
            if is_max:
                for e in range(m):
                    a, v = acc[U(e)], buf[U(t1 + e)]
                    a = v if v > a else a
                    v = buf[U(t2 + e)]
                    nxt[U(e)] = v if v > a else a
                acc, nxt = nxt, acc
            elif k + 1 < kh * kw:
                for e in range(m):
                    acc[U(e)] = (acc[U(e)] + buf[U(t1 + e)]) + buf[U(t2 + e)]
            else:
                for e in range(m):
                    acc[U(e)] = acc[U(e)] + buf[U(t1 + e)]
        for p in range(n):
            for i in range(oh):
                o, a = (a0 + p) * oh * ow + i * ow, p * r_ + i * ul
                if is_max:
                    for j in range(ow):
                        of[U(o + j)] = acc[U(a + j)]
                else:
                    for j in range(ow):
                        of[U(o + j)] = acc[U(a + j)] / dvf[U(i * ow + j)]


def _window_counts(in_len, out_len, k, s, pb, pe, d, include_pad):
    """How many positions of each 1-D window are counted by an average."""
    starts = np.arange(out_len) * s - pb
    pos = starts[:, None] + np.arange(k)[None, :] * d
    ok = (pos < in_len + pe) & (pos >= -pb) if include_pad else (pos >= 0) & (pos < in_len)
    return ok.sum(axis=1)


@functools.lru_cache(maxsize=256)
def _divisors(h, w, out_shape, kernel_shape, strides, pads, dilations, include_pad, dtype):
    """The counted positions of each window of a 2-D average (oh x ow, read-only), kept
    per geometry: computing them took a third of a 28 x 28 pool's time."""
    ch = _window_counts(h, out_shape[0], kernel_shape[0], strides[0], pads[0], pads[2],
                        dilations[0], include_pad)
    cw = _window_counts(w, out_shape[1], kernel_shape[1], strides[1], pads[1], pads[3],
                        dilations[1], include_pad)
    div = np.maximum(ch[:, None] * cw[None, :], 1).astype(dtype)
    div.flags.writeable = False
    return div


def lanes(x) -> bool:
    """Whether a 2-D pool of ``x`` runs eight planes at a time (:mod:`.pool_lanes`)."""
    return x.dtype == np.float32 and x.shape[2] * x.shape[3] <= pool_lanes.LANES_AREA \
        and LANES_ON


def _lanes(x, out, div, args, idx=None, order=0) -> None:
    """:func:`.pool_lanes.pool_lanes` in blocks of whole groups of eight planes on npuc's
    threads (``idx``: a max pool's indices, laid out as ``out``)."""
    n, c, h, w = x.shape
    xf, of, divf = np.ascontiguousarray(x).reshape(-1), out.reshape(-1), div.reshape(-1)
    step = -(-threads.block(n * c) // pool_lanes.LANES) * pool_lanes.LANES

    def block(i):
        q0, q1 = i * step, min(n * c, (i + 1) * step)
        if idx is None:
            pool_lanes.pool_lanes(xf, h, w, of, *out.shape[2:], q0, q1, divf, *args)
        else:
            pool_lanes.max_pool_lanes_indices(xf, h, w, of, idx.reshape(-1), *out.shape[2:],
                                              q0, q1, *args[1:], order)

    threads.parallel(block, -(-(n * c) // step))


def max_pool2d_indices(x, kernel_shape, strides, pads, dilations, out_shape, order):
    """A 2-D float32 max pool and its indices (what ``pool.pool_nd`` returns) eight planes
    at a time; for inputs that :func:`lanes` takes."""
    out = np.empty((*x.shape[:2], *out_shape), dtype=x.dtype)
    idx = np.empty(out.shape, np.int64)
    _lanes(x, out, np.ones((0, 0), x.dtype), (True, *kernel_shape, *strides, pads[0],
                                              pads[1], *dilations), idx, order)
    return out, idx


def _pool2d_fast(x, mode, kernel_shape, strides, pads, dilations, out_shape, count_include_pad):
    """2-D max or average pool in blocks of planes on npuc's threads (``x`` read in place
    when C-contiguous, else copied once)."""
    n, c, h, w = x.shape
    out = np.empty((n, c, *out_shape), dtype=x.dtype)
    div = np.ones((0, 0), dtype=x.dtype)
    if mode == AVG:
        div = _divisors(h, w, tuple(out_shape), tuple(kernel_shape), tuple(strides),
                        tuple(pads), tuple(dilations), bool(count_include_pad), x.dtype)
    args = (mode == MAX, *kernel_shape, *strides, pads[0], pads[1], *dilations)
    if lanes(x):
        _lanes(x, out, div, args)
        return out
    if out_shape[0] * out_shape[1] <= SMALL_PLANE:  # tiny planes: taps over groups of them
        xf, of, divf = np.ascontiguousarray(x).reshape(-1), out.reshape(-1), div.reshape(-1)
        step = threads.block(n * c)
        threads.parallel(lambda i: _pool2d_batch(xf, h, w, of, *out_shape, i * step,
                                                 min(n * c, (i + 1) * step), divf, *args),
                         -(-(n * c) // step))
        return out
    # stride 1, or output rows too short for the row loop to vectorise (under 16 columns
    # it was slower than the planes): one padded copy, then taps over whole planes
    if (strides[0] == 1 and strides[1] == 1) or out_shape[1] < 16:
        step = threads.block(c)
        threads.parallel(lambda i: _pool2d_planes(
            x, out, div, i * step, min(c, (i + 1) * step), mode == MAX, kernel_shape[0],
            kernel_shape[1], strides[0], strides[1], pads[0], pads[1], dilations[0],
            dilations[1]), -(-c // step))
        return out
    xf, of, divf = np.ascontiguousarray(x).reshape(-1), out.reshape(-1), div.reshape(-1)
    step = threads.block(n * c)

    def planes(i):
        _pool2d_rows(xf, h, w, of, out_shape[0], out_shape[1], i * step,
                     min(n * c, (i + 1) * step), divf, mode == MAX, kernel_shape[0],
                     kernel_shape[1], strides[0], strides[1], pads[0], pads[1],
                     dilations[0], dilations[1])

    threads.parallel(planes, -(-(n * c) // step))
    return out

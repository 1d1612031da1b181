"""Float32 2-D max and average pools eight planes at a time.

The eight planes are copied interleaved (``xp[row, column, plane]``, padded with the
identity of the reduction: -inf, or +0.0, which leaves a sum started at +0.0 unchanged)
by 8x8 register transposes (:func:`.conv_depthwise._transpose8`), so that every output of
the eight planes is one vector reduction over the kernel's taps, with no bounds test
and no short loop at a row's edge (:func:`.tiles32.taps_kernel`: ``acc = x if x > acc
else acc`` from -inf, a NaN never winning, or ``acc = acc + x`` from +0.0), the taps in
the kernel's row-major order, then one division for averages: the bits of the per-plane
loops of :mod:`.pool2d`. The results go back to their planes by the same transposes. The
depthwise convolutions of small planes are computed the same way
(:func:`.conv_depthwise._depthwise_lanes`).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import tiles32
from .conv_depthwise import _transpose8

LANES = tiles32.LANES
# eight, four or one output of eight planes at a time: eight independent chains of
# additions (or maxima) where a depthwise convolution's four suffice (its products give
# each tap twice the work)
_max8, _max4, _max1 = (tiles32.taps_kernel(n, "max") for n in (8, 4, 1))
_sum8, _sum4, _sum1 = (tiles32.taps_kernel(n, "sum") for n in (8, 4, 1))


def _argmax_kernel(count: int):
    """The intrinsic ``argmax(x, xoff, xstep, offs, nt, out, ooff, win, woff)``: a max
    pool's ``count`` outputs of eight planes as :func:`.tiles32.taps_kernel`'s ``"max"``
    computes them (``acc = x if x > acc else acc`` from -inf, the taps in order), each
    lane's last winning tap (-1 when no tap was greater than -inf) stored as int32 to
    ``win[woff + 8p:][:8]``."""

    @intrinsic
    def argmax(typingctx, x, xoff, xstep, offs, nt, out, ooff, win, woff):
        sig = types.void(x, xoff, xstep, offs, nt, out, ooff, win, woff)

        def codegen(context, builder, signature, args):
            _, xoff_, xstep_, _, nt_, _, ooff_, _, woff_ = args
            g = tiles32._IR(context, builder, signature, args, signature.args[0].dtype)
            px, po, pout, pwin = g.data(0), g.data(3), g.data(5), g.data(7)
            i32 = ir.IntType(32)
            it = ir.VectorType(i32, LANES)
            with builder.goto_entry_block():
                acc = [builder.alloca(g.vt) for _ in range(count)]
                arg = [builder.alloca(it) for _ in range(count)]
            for a, b in zip(acc, arg):
                builder.store(ir.Constant(g.vt, [-np.inf] * LANES), a)
                builder.store(ir.Constant(it, [-1] * LANES), b)
            starts = [builder.add(xoff_, builder.mul(xstep_, g.const(p))) for p in range(count)]
            undef = ir.Constant(it, ir.Undefined)
            lane0 = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
            with cgutils.for_range(builder, nt_) as loop:
                t = loop.index
                off = builder.load(builder.gep(po, [t]))
                tv = builder.shuffle_vector(builder.insert_element(
                    undef, builder.trunc(t, i32), ir.Constant(i32, 0)), undef, lane0)
                for p in range(count):
                    xv, av = g.load(px, builder.add(starts[p], off)), builder.load(acc[p])
                    wins = builder.fcmp_ordered(">", xv, av)
                    builder.store(builder.select(wins, xv, av), acc[p])
                    builder.store(builder.select(wins, tv, builder.load(arg[p])), arg[p])
            for p in range(count):
                builder.store(builder.load(acc[p]), g.vptr(pout, builder.add(
                    ooff_, g.const(p * LANES))), align=4)
                where = builder.gep(pwin, [builder.add(woff_, g.const(p * LANES))])
                builder.store(builder.load(arg[p]), builder.bitcast(where, it.as_pointer()),
                              align=4)
            return context.get_dummy_value()

        return sig, codegen

    return argmax


_arg8, _arg4, _arg1 = (_argmax_kernel(n) for n in (8, 4, 1))
# input planes of at most this many positions are pooled eight at a time (the interleaved
# copy of eight of them, with its padding, stays in L2)
LANES_AREA = 128 * 128


@nb.njit(cache=True, nogil=True, inline="always")
def _taps(is_max, count, xp, at, step, offs, ones, nt, res, out):
    """``count`` (8, 4 or 1) outputs of eight planes, their windows ``step`` apart from
    ``xp[at]``, into ``res[out]``."""
    a = (xp, at, step, offs, ones, nt, ones, np.float32(1), np.float32(0), 0, res, out)
    if is_max and count == 8:
        _max8(*a)
    elif is_max and count == 4:
        _max4(*a)
    elif is_max:
        _max1(*a)
    elif count == 8:
        _sum8(*a)
    elif count == 4:
        _sum4(*a)
    else:
        _sum1(*a)


@nb.njit(cache=True, nogil=True, inline="always")
def _argtaps(count, xp, at, step, offs, nt, res, out, win):
    """:func:`_taps` of a max pool that also keeps each output's winning tap in ``win``."""
    if count == 8:
        _arg8(xp, at, step, offs, nt, res, out, win, out)
    elif count == 4:
        _arg4(xp, at, step, offs, nt, res, out, win, out)
    else:
        _arg1(xp, at, step, offs, nt, res, out, win, out)


@nb.njit(cache=True, nogil=True, inline="always")
def _plane(h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, fill):
    """The interleaved padded buffer of eight planes (the rows and columns the windows
    read, and every input position, so that all of them are copied by transposes, the
    rest holding ``fill``), its row length, each tap's offset in it and each input
    position's place in it."""
    hp = max((oh - 1) * sh + (kh - 1) * dh + 1, ph + h)
    wp = max((ow - 1) * sw + (kw - 1) * dw + 1, pw + w)
    xp = np.full(hp * wp * LANES, fill, np.float32)
    offs = np.empty(kh * kw, np.int64)
    for t in range(kh * kw):
        offs[t] = ((t // kw) * dh * wp + (t % kw) * dw) * LANES
    pos = np.empty(h * w, np.int64)
    for r in range(h):
        for q in range(w):
            pos[r * w + q] = ((r + ph) * wp + pw + q) * LANES
    return xp, wp, offs, pos


@nb.njit(cache=True, nogil=True, inline="always")
def _interleave(xf, qb, nl, hw, xp, pos):
    """Planes ``qb`` to ``qb + nl`` of ``xf`` into ``xp`` (by transposes when all eight)."""
    head = hw - hw % LANES if nl == LANES else 0
    for e in range(0, head, LANES):
        _transpose8(xf, qb * hw + e, hw, xp, 0, pos, e)
    for lane in range(nl):
        for e in range(head, hw):
            xp[pos[e] + lane] = xf[(qb + lane) * hw + e]


@nb.njit(cache=True, nogil=True, inline="always")
def _spread(res, of, qb, nl, ohw, planes):
    """The interleaved outputs ``res`` back to planes ``qb`` to ``qb + nl`` of ``of``."""
    tail = ohw - ohw % LANES if nl == LANES else 0
    for e in range(0, tail, LANES):
        _transpose8(res, e * LANES, LANES, of, qb * ohw + e, planes, 0)
    for lane in range(nl):
        for e in range(tail, ohw):
            of[(qb + lane) * ohw + e] = res[e * LANES + lane]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def pool_lanes(xf, h, w, of, oh, ow, q0, q1, divf, is_max, kh, kw, sh, sw, ph, pw, dh, dw):
    """Max or average of 2-D windows over planes [q0, q1) of the flat float32 input
    ``xf`` (planes of h x w, C order) into the flat float32 output ``of`` (planes of oh
    x ow), averages divided by ``divf`` (the counted positions of each window, flat oh x
    ow); paddings ``ph``, ``pw`` at the start (a window past the end reads the identity,
    as if it skipped those positions)."""
    nt = kh * kw
    fill = np.float32(-np.inf) if is_max else np.float32(0)
    xp, wp, offs, pos = _plane(h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, fill)
    res = np.empty(oh * ow * LANES, np.float32)  # the outputs, interleaved
    ones = np.ones(nt * LANES, np.float32)
    planes = np.arange(LANES) * (oh * ow)
    for qb in range(q0, q1, LANES):
        nl = min(LANES, q1 - qb)
        _interleave(xf, qb, nl, h * w, xp, pos)
        for i in range(oh):
            j = 0
            while j < ow:
                count = 8 if j + 8 <= ow else 4 if j + 4 <= ow else 1
                _taps(is_max, count, xp, (i * sh * wp + j * sw) * LANES, sw * LANES, offs,
                      ones, nt, res, (i * ow + j) * LANES)
                j += count
        if not is_max:
            for e in range(oh * ow):
                d = divf[e]
                for lane in range(LANES):
                    res[e * LANES + lane] = res[e * LANES + lane] / d
        _spread(res, of, qb, nl, oh * ow, planes)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def max_pool_lanes_indices(xf, h, w, of, idxf, oh, ow, q0, q1, kh, kw, sh, sw, ph, pw, dh,
                           dw, order):
    """:func:`pool_lanes`'s max pool, with each maximum's index in the flattened input in
    ``idxf`` (int64, laid out as ``of``) as ``pool._pool3d`` gives it: the plane's first
    position, plus the tap's row-major (``order`` 0) or column-major (1) place in the
    plane; the first tap that beats every one before it (from -inf), else the window's
    first tap inside the input (-1 when there is none)."""
    nt = kh * kw
    xp, wp, offs, pos = _plane(h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw,
                               np.float32(-np.inf))
    res = np.empty(oh * ow * LANES, np.float32)
    win = np.empty(oh * ow * LANES, np.int32)  # each lane's winning tap, interleaved
    first = np.full(oh * ow, -1, np.int64)  # each window's first tap inside the input
    for e in range(oh * ow):
        for t in range(nt - 1, -1, -1):
            r, c = e // ow * sh + t // kw * dh - ph, e % ow * sw + t % kw * dw - pw
            if 0 <= r < h and 0 <= c < w:
                first[e] = t
    planes = np.arange(LANES) * (oh * ow)
    for qb in range(q0, q1, LANES):
        nl = min(LANES, q1 - qb)
        _interleave(xf, qb, nl, h * w, xp, pos)
        for i in range(oh):
            j = 0
            while j < ow:
                count = 8 if j + 8 <= ow else 4 if j + 4 <= ow else 1
                _argtaps(count, xp, (i * sh * wp + j * sw) * LANES, sw * LANES, offs, nt,
                         res, (i * ow + j) * LANES, win)
                j += count
        _spread(res, of, qb, nl, oh * ow, planes)
        for e in range(oh * ow):
            for lane in range(nl):
                t = win[e * LANES + lane]
                t = first[e] if t < 0 else t
                r, c = e // ow * sh + t // kw * dh - ph, e % ow * sw + t % kw * dw - pw
                at = (r * w + c if order == 0 else r + c * h) if t >= 0 else -1
                idxf[(qb + lane) * oh * ow + e] = (qb + lane) * h * w + at

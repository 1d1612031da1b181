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

from . import tiles32
from .conv_depthwise import _transpose8

LANES = tiles32.LANES
# eight, four or one output of eight planes at a time: eight independent chains of
# additions (or maxima) where a depthwise convolution's four suffice (its products give
# each tap twice the work)
_max8, _max4, _max1 = (tiles32.taps_kernel(n, "max") for n in (8, 4, 1))
_sum8, _sum4, _sum1 = (tiles32.taps_kernel(n, "sum") for n in (8, 4, 1))
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


@nb.njit(cache=True, nogil=True, error_model="numpy")
def pool_lanes(xf, h, w, of, oh, ow, q0, q1, divf, is_max, kh, kw, sh, sw, ph, pw, dh, dw):
    """Max or average of 2-D windows over planes [q0, q1) of the flat float32 input
    ``xf`` (planes of h x w, C order) into the flat float32 output ``of`` (planes of oh
    x ow), averages divided by ``divf`` (the counted positions of each window, flat oh x
    ow); paddings ``ph``, ``pw`` at the start (a window past the end reads the identity,
    as if it skipped those positions)."""
    nt = kh * kw
    # the padded plane: the rows and columns the windows read, and every input position
    # (so that all of them are copied by transposes)
    hp = max((oh - 1) * sh + (kh - 1) * dh + 1, ph + h)
    wp = max((ow - 1) * sw + (kw - 1) * dw + 1, pw + w)
    fill = np.float32(-np.inf) if is_max else np.float32(0)
    xp = np.full(hp * wp * LANES, fill, np.float32)  # the padding keeps the identity
    res = np.empty(oh * ow * LANES, np.float32)  # the outputs, interleaved
    ones = np.ones(nt * LANES, np.float32)
    offs = np.empty(nt, np.int64)
    for t in range(nt):
        offs[t] = ((t // kw) * dh * wp + (t % kw) * dw) * LANES
    pos = np.empty(h * w, np.int64)  # each input position's place in xp
    for r in range(h):
        for q in range(w):
            pos[r * w + q] = ((r + ph) * wp + pw + q) * LANES
    planes = np.arange(LANES) * (oh * ow)
    for qb in range(q0, q1, LANES):
        nl = min(LANES, q1 - qb)
        full = nl == LANES
        head = h * w - h * w % LANES if full else 0
        for e in range(0, head, LANES):
            _transpose8(xf, qb * h * w + e, h * w, xp, 0, pos, e)
        for lane in range(nl):
            for e in range(head, h * w):
                xp[pos[e] + lane] = xf[(qb + lane) * h * w + e]
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
        tail = oh * ow - oh * ow % LANES if full else 0
        for e in range(0, tail, LANES):
            _transpose8(res, e * LANES, LANES, of, qb * oh * ow + e, planes, 0)
        for lane in range(nl):
            for e in range(tail, oh * ow):
                of[(qb + lane) * oh * ow + e] = res[e * LANES + lane]

"""Depthwise convolutions (one input channel per group), as direct Numba loops: im2col
would turn them into thousands of tiny matrix products.

:func:`_depthwise2d` states the sum (float64, kernel row by row); :func:`_depthwise_planes`
computes the same numbers with long vectorised loops, one plane at a time, and
:func:`_depthwise_lanes` the same numbers eight channels at a time for small planes.
:func:`depthwise` runs them in channel blocks on npuc's threads, with the bias and a
clamp in the same loop in a float32-products run.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .. import threads
from . import accumulate, tiles32
from .epilogue import bias_clamp
from .windows import pad_phases


@nb.njit(cache=True, nogil=True)
def _depthwise2d(x, w, out, sh, sw, ph, pw, dh, dw, mult):
    """The depthwise convolution's definition, one output row at a time (the tests hold
    :func:`_depthwise_planes` to it)."""
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


@nb.njit(cache=True, nogil=True)
def _depthwise_planes(x, w, out, c0, c1, sh, sw, ph, pw, dh, dw, mult, zero, bias, lo, hi):
    """Depthwise convolution of input channels [c0, c1), summed as :func:`_depthwise2d`
    (kernel row by row, from +0.0) in the type of ``zero``: float64 (the definition), or
    float32 in a float32-products run (eight AVX2 lanes instead of four), one plane at a
    time. Each output gets ``bias[oc]`` added when ``bias`` is not empty, then is
    clamped to [lo, hi] as Clip clamps (Relu: [0, inf]) unless ``lo > hi``.

    The plane is copied into zero-padded float64 phase planes (:func:`~.windows.pad_phases`), so
    that a kernel tap is one long contiguous loop over every output of the plane (rows
    ``ul`` apart, the last ``ul - ow`` of each unused), which vectorises; up to three taps
    are summed per pass, in order, and 3x3 kernels in one pass of nine. Adding a zero
    product of the padding leaves a sum started at +0.0 unchanged."""
    n = x.shape[0]
    oh, ow = out.shape[2], out.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    nk = kh * kw
    rl = ((oh - 1) * sh + (kh - 1) * dh) // sh + 1
    ul = ((ow - 1) * sw + (kw - 1) * dw) // sw + 1
    buf = np.zeros((sh, sw, rl, ul), dtype=type(zero))
    flat = buf.reshape(sh * sw * rl * ul)
    m = oh * ul - (ul - ow)
    acc = np.empty(m, dtype=type(zero))
    taps = np.empty(nk, dtype=np.int64)  # where each tap's reads start in ``flat``
    for ki in range(kh):
        for kj in range(kw):
            pr, pc = (ki * dh) % sh, (kj * dw) % sw
            taps[ki * kw + kj] = ((pr * sw + pc) * rl + (ki * dh) // sh) * ul + (kj * dw) // sw
    k = np.empty(nk, dtype=type(zero))
    for b in range(n):
        for ic in range(c0, c1):
            pad_phases(x, b, ic, buf, sh, sw, ph, pw)
            for oc in range(ic * mult, (ic + 1) * mult):
                for t in range(nk):
                    k[t] = w[oc, 0, t // kw, t % kw]
                if nk == 9:
                    _nine_taps(flat, taps, k, acc, m, zero)
                else:
                    _taps_in_threes(flat, taps, k, acc, m)
                if len(bias) or lo <= hi:
                    bias_clamp(acc, 0, m, 1, m, bias[oc:oc + 1] if len(bias) else bias, bias[:0],
                               lo, hi)
                for i in range(oh):  # slices, whose unit steps let the copy vectorise
                    orow, arow = out[b, oc, i], acc[i * ul:i * ul + ow]
                    for j in range(ow):
                        orow[j] = arow[j]


@nb.njit(cache=True, nogil=True)
def _nine_taps(flat, taps, k, acc, m, zero):
    """acc[e] = the nine products k[t] * flat[taps[t] + e], summed in order from +0.0
    (``zero``, of the type the sum is computed in)."""
    a0, a1, a2 = flat[taps[0]:taps[0] + m], flat[taps[1]:taps[1] + m], flat[taps[2]:taps[2] + m]
    b0, b1, b2 = flat[taps[3]:taps[3] + m], flat[taps[4]:taps[4] + m], flat[taps[5]:taps[5] + m]
    c0, c1, c2 = flat[taps[6]:taps[6] + m], flat[taps[7]:taps[7] + m], flat[taps[8]:taps[8] + m]
    k0, k1, k2, k3, k4, k5, k6, k7, k8 = k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]
    for e in range(m):
        s = zero
        s += k0 * a0[e]
        s += k1 * a1[e]
        s += k2 * a2[e]
        s += k3 * b0[e]
        s += k4 * b1[e]
        s += k5 * b2[e]
        s += k6 * c0[e]
        s += k7 * c1[e]
        s += k8 * c2[e]
        acc[e] = s


@nb.njit(cache=True, nogil=True)
def _taps_in_threes(flat, taps, k, acc, m):
    """acc[e] = the products k[t] * flat[taps[t] + e] summed in order from +0.0, three
    taps per pass over ``acc``."""
    acc[:] = 0.0
    nk = len(taps)
    for t in range(0, nk - 2, 3):
        s0, s1, s2 = flat[taps[t]:taps[t] + m], flat[taps[t + 1]:taps[t + 1] + m], \
            flat[taps[t + 2]:taps[t + 2] + m]
        k0, k1, k2 = k[t], k[t + 1], k[t + 2]
        for e in range(m):
            acc[e] = ((acc[e] + k0 * s0[e]) + k1 * s1[e]) + k2 * s2[e]
    for t in range(nk - nk % 3, nk):
        s0, k0 = flat[taps[t]:taps[t] + m], k[t]
        for e in range(m):
            acc[e] += k0 * s0[e]


LANES = 8  # channels computed together by :func:`_depthwise_lanes`
# input planes of at most this many positions take _depthwise_lanes: from 7x7 to 112x112
# (MobileNetV2's, strides 1 and 2) they ran 1.2-4x faster than _depthwise_planes; at
# 224x224 and more, 1.2-1.5x slower (their interleaved copies no longer fit in L2)
LANES_AREA = 128 * 128
# in float64 sums the planes are interleaved element by element (the transposes move one
# type): then only output planes of at most this many positions (14x14, 7x7) take
# _depthwise_lanes, 1.3-1.9x faster there, 1.1-1.4x slower at 28x28
COPIED_LANES_AREA = 256

# the shuffles of an 8x8 transpose (AVX's unpack, shuffle and 128-bit permute): pairs of
# rows, then pairs of pairs, then halves
_UNPACK = ([0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15])
_PAIRS = ([0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15])
_HALVES = ([0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15])


def _transposed(builder, rows):
    """The columns of the 8x8 block whose rows are the vectors ``rows``."""
    def mix(a, b, mask):
        return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8),
                                                        mask))

    t = [mix(rows[2 * i], rows[2 * i + 1], _UNPACK[h]) for i in range(4) for h in (0, 1)]
    u = [mix(t[4 * q + h], t[4 * q + h + 2], _PAIRS[k]) for q in range(2) for h in (0, 1)
         for k in (0, 1)]
    return [mix(u[j], u[j + 4], _HALVES[h]) for h in (0, 1) for j in range(4)]


@intrinsic
def _transpose8(typingctx, src, soff, sstep, dst, doff, dpos, at):
    """``dst[doff + dpos[at + e]:][:8] = src[soff + l*sstep + e] for l < 8``, for e < 8: the
    8x8 block whose rows start ``sstep`` apart in ``src``, transposed, each of its
    columns stored where ``dpos`` says. Data movement only: no value changes. The
    offsets count elements from the arrays' first, whatever their shapes: for arrays
    laid out in C order (:func:`_contiguous`) of one type."""
    sig = types.void(src, soff, sstep, dst, doff, dpos, at)

    def codegen(context, builder, signature, args):
        _, soff_, sstep_, _, doff_, _, at_ = args
        g = tiles32._IR(context, builder, signature, args, signature.args[0].dtype)
        ps, pd, pp = g.data(0), g.data(3), g.data(5)
        rows = [g.load(ps, builder.add(soff_, builder.mul(sstep_, g.const(r))))
                for r in range(LANES)]
        for e, v in enumerate(_transposed(builder, rows)):
            where = builder.load(builder.gep(pp, [builder.add(at_, g.const(e))]))
            builder.store(v, g.vptr(pd, builder.add(doff_, where)), align=4)
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(cache=True, nogil=True)
def _contiguous(a) -> bool:
    """Whether the 4-D array ``a`` is laid out in C order (its elements at their flat
    index)."""
    step = a.itemsize
    for d in range(3, -1, -1):
        if a.shape[d] > 1 and a.strides[d] != step:
            return False
        step *= a.shape[d]
    return True


@nb.njit(cache=True, nogil=True)
def _depthwise_lanes(x, w, out, c0, c1, sh, sw, ph, pw, dh, dw, zero, bias, lo, hi):
    """:func:`_depthwise_planes` (channel multiplier 1) for small planes, where a loop
    per plane costs more than its sums: :data:`LANES` channels at a time, copied
    interleaved (``xp[row, column, lane]``, zero-padded), so that each output of eight
    channels is one vector sum over the kernel's taps (:func:`.tiles32.taps`), in the
    same order and with the same float operations as there (the same bits). The planes
    are interleaved and de-interleaved by 8x8 transposes (:func:`_transpose8`), eight
    positions of eight channels at a time."""
    n, c, h, wd = x.shape
    oh, ow = out.shape[2], out.shape[3]
    kh, kw = w.shape[2], w.shape[3]
    nt = kh * kw
    hp = (oh - 1) * sh + (kh - 1) * dh + 1
    wp = (ow - 1) * sw + (kw - 1) * dw + 1
    xp = np.zeros(hp * wp * LANES, dtype=type(zero))  # the padding stays zero
    res = np.empty(oh * ow * LANES, dtype=type(zero))  # the outputs, interleaved
    k = np.zeros(nt * LANES, dtype=type(zero))
    bl = np.zeros(LANES, dtype=type(zero))
    offs = np.empty(nt, np.int64)
    for t in range(nt):
        offs[t] = ((t // kw) * dh * wp + (t % kw) * dw) * LANES
    flags = (tiles32.BIAS if len(bias) else 0) | (tiles32.CLAMP if lo <= hi else 0)
    r0, r1 = max(0, -ph), min(h, hp - ph)
    q0, q1 = max(0, -pw), min(wd, wp - pw)
    whole = ow - ow % tiles32.POSITIONS  # outputs of a row that go POSITIONS at a time
    # the interleaved position of each input element (all of them inside the padded
    # plane: no negative padding), and each channel's output plane from the first
    blocks = r0 == 0 and r1 == h and q0 == 0 and q1 == wd and _contiguous(x) \
        and _contiguous(out) and x.dtype == xp.dtype and out.dtype == res.dtype
    pos = np.empty(h * wd, np.int64)
    for r in range(h):
        for q in range(wd):
            pos[r * wd + q] = ((r + ph) * wp + pw + q) * LANES
    planes = np.arange(LANES) * (oh * ow)
    for b in range(n):
        for cb in range(c0, c1, LANES):
            nl = min(LANES, c1 - cb)
            full = blocks and nl == LANES
            for lane in range(nl):
                for t in range(nt):
                    k[t * LANES + lane] = w[cb + lane, 0, t // kw, t % kw]
                if len(bias):
                    bl[lane] = bias[cb + lane]
            head = h * wd - h * wd % LANES if full else 0
            for e in range(0, head, LANES):
                _transpose8(x, (b * c + cb) * h * wd + e, h * wd, xp, 0, pos, e)
            for lane in range(nl):
                for e in range(head, h * wd):
                    r, q = e // wd, e % wd
                    if r0 <= r < r1 and q0 <= q < q1:
                        xp[pos[e] + lane] = x[b, cb + lane, r, q]
            for i in range(oh):
                for j in range(0, whole, tiles32.POSITIONS):
                    tiles32.taps(xp, (i * sh * wp + j * sw) * LANES, sw * LANES, offs, k, nt,
                                 bl, lo, hi, flags, res, (i * ow + j) * LANES)
                for j in range(whole, ow):
                    tiles32.taps1(xp, (i * sh * wp + j * sw) * LANES, 0, offs, k, nt, bl, lo,
                                  hi, flags, res, (i * ow + j) * LANES)
            tail = oh * ow - oh * ow % LANES if full else 0
            for e in range(0, tail, LANES):
                _transpose8(res, e * LANES, LANES, out, (b * c + cb) * oh * ow + e, planes, 0)
            for lane in range(nl):
                for e in range(tail, oh * ow):
                    out[b, cb + lane, e // ow, e % ow] = res[e * LANES + lane]


def depthwise(x, w, out, strides, pads, dilations, mult, b=None, activation=None) -> bool:
    """A depthwise convolution in channel blocks on npuc's threads; True when it added
    the bias ``b`` and applied ``activation`` itself (a float32 one in a float32-products
    run, summed in float32), False when the caller still has to."""
    c = x.shape[1]
    step = threads.block(c)
    fast = (x.dtype == w.dtype == out.dtype == np.float32 and
            accumulate.product_type(x.dtype, w.dtype, out.dtype) == np.float32)
    zero = np.float32(0) if fast else np.float64(0)
    bias = b.astype(np.float32).reshape(-1) if fast and b is not None else np.empty(0, zero.dtype)
    # a clamp (Relu, Clip) in the loop; another activation per block after the sums
    bounds = activation.clamp() if fast and activation is not None else None
    rest = activation if fast and activation is not None and bounds is None else None
    lo, hi = bounds or (zero.dtype.type(1), zero.dtype.type(0))  # (1, 0): no clamp

    lanes = mult == 1 and (x.shape[2] * x.shape[3] <= LANES_AREA if fast else
                           out.shape[2] * out.shape[3] <= COPIED_LANES_AREA)
    if lanes:  # whole groups of eight channels per block
        step = -(-step // LANES) * LANES

    def channels(i):
        c0, c1 = i * step, min(c, (i + 1) * step)
        if lanes:
            _depthwise_lanes(x, w, out, c0, c1, strides[0], strides[1], pads[0], pads[1],
                             dilations[0], dilations[1], zero, bias, lo, hi)
        else:
            _depthwise_planes(x, w, out, c0, c1, strides[0], strides[1], pads[0], pads[1],
                              dilations[0], dilations[1], mult, zero, bias, lo, hi)
        if rest:
            rest.activate(out[:, c0 * mult:c1 * mult])

    threads.parallel(channels, -(-c // step))
    return fast

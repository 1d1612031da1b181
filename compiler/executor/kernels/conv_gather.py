"""Gathering the im2col columns of a block of output positions of a 2-D convolution (the
float32 convolutions of :mod:`.conv_columns`), and the per-thread buffers they go into.

Three ways, chosen by the geometry, all writing the same numbers (tested against
:func:`_gather`): a whole image of short output rows by one numpy copy per kernel tap;
kernels of several taps through zero-padded phase planes of each input plane, so that a
tap reads each output row as one contiguous run; a one-tap kernel straight from x.
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np

from .windows import _copy_every, _window_slices, pad_phase_rows

SHORT_ROWS = 16  # output rows shorter than this are gathered by numpy copies

_local = threading.local()


def scratch(size: int, name: str = "buf") -> np.ndarray:
    """A float32 buffer of at least ``size`` elements owned by the calling thread, reused
    across calls (a fresh one per block would cost its page faults each time)."""
    buf = getattr(_local, name, None)
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1 << 16), np.float32)
        setattr(_local, name, buf)
    return buf[:size]



def gather_block(geometry, dst, b, c0, p0, p1) -> None:
    """The columns of positions ``[p0, p1)`` of image ``b``, channels from ``c0`` (as
    many as ``dst`` has rows for), into ``dst``."""
    x, (kh, kw), (oh, ow), strides, pads, dilations = geometry
    (sh, sw), (dh, dw) = strides, dilations
    if p1 - p0 == oh * ow and ow < SHORT_ROWS:  # a whole image of short rows
        _gather_copies(x, dst, b, c0, (kh, kw), strides, pads, dilations, (oh, ow))
    elif kh * kw > 1:
        rl = ((oh - 1) * sh + (kh - 1) * dh) // sh + 1
        ul = ((ow - 1) * sw + (kw - 1) * dw) // sw + 1
        phases = scratch(sh * sw * rl * ul, "phases").reshape(sh, sw, rl, ul)
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
    rl = buf.shape[2]
    cg = dst.shape[0] // (kh * kw)
    p1 = p0 + dst.shape[1]
    i0, i1 = p0 // ow, (p1 - 1) // ow + 1
    lo, hi = i0 * sh, min(rl * sh, (i1 - 1) * sh + (kh - 1) * dh + 1)
    buf[:] = 0  # the padding; no plane writes there
    for ch in range(cg):
        pad_phase_rows(x, b, c0 + ch, buf, sh, sw, ph, pw, lo, hi)
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

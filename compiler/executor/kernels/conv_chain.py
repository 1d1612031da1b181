"""A 1x1 convolution whose only reader is a depthwise convolution (MobileNet's inverted
residual: expand the channels, then filter each one), run as one kernel in a
float32-products run.

Run apart, the expansion writes the largest tensor of the block (six times the input's
channels), and the depthwise convolution reads it back in a second call of the pool, of
blocks too short on small planes for the pool's second thread to help much. Here each
task takes one image and a block of channels: it computes the expansion's rows of those
channels for the whole image into a buffer of its thread, then the depthwise convolution
of those channels from it; the expanded tensor is never made. The tasks run in one call
of a Numba function per thread (:func:`_tasks`, taking them from an atomic counter), so
no task waits for the interpreter. MobileNetV2 on two threads (16 pairs, batch 2): the
pairs took 16.1 ms a run against 19.0 ms for their nodes apart, and the whole run 0.93x
the time (median of 30 paired runs in one process, quartiles 0.92-0.94).

Each number is what the separate kernels compute: the 1x1 convolution's rows are the
products :mod:`.conv_columns` makes (register tiles of :mod:`.tiles32`, one fma chain
per element whatever the block, or one BLAS call per block of rows over the whole
image), then its bias and clamp (:class:`~.epilogue.Epilogue`), then the depthwise
kernel :func:`.conv_depthwise.depthwise` takes for such planes (:func:`._depthwise_lanes`),
channel by channel.
The tests compare the bits with the nodes run apart.
"""

from __future__ import annotations

import weakref

import numba as nb
import numpy as np

from .. import threads
from . import conv_columns, conv_depthwise, conv_prepared, numpy_blas, tiles32
from .conv_depthwise import LANES, _depthwise_lanes
from .conv_gather import scratch
from .conv_tasks import take as _take
from .epilogue import Epilogue, bias_clamp
from .windows import conv_geometry, conv_out_shape

MAX_PLANE = conv_depthwise.LANES_AREA  # positions of an expanded plane at most (the
# eight-channel depthwise kernel's planes; larger ones run apart)
MIN_TASKS = 8  # tasks per pair at least, when the channels allow (16 was 2% slower)

# graph -> {id(first node): its preparation}, as conv_prepared keeps them (weakly)
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NONE = np.empty(0, np.float32)


class _Prepared:
    __slots__ = ("key", "refs", "usable", "out_shape", "bounds", "rows", "first", "blas",
                 "geometry", "bias", "lo", "hi")

    def holds(self, key, arrays) -> bool:
        return self.key == key and conv_prepared.same(self.refs, arrays)


def run(graph, first, second, x, w1, b1, w2, b2) -> np.ndarray | None:
    """The output of the depthwise node ``second`` fed by the 1x1 node ``first`` (each a
    Conv or an npuc FusedConv; inputs ``x``, ``w1``, ``b1`` and ``w2``, ``b2``), or
    None when the pair cannot run as one (nothing computed: run them apart)."""
    key = (x.shape, x.dtype, first.attrs, second.attrs)
    arrays = (w1, b1, w2, b2)
    prepared = conv_prepared.table(_PREPARED, graph)
    p = prepared.get(id(first))
    if p is None or not p.holds(key, arrays):
        p = prepared[id(first)] = _prepare(key, arrays, x, first, second)
    if not p.usable:
        return None
    x = np.ascontiguousarray(x)
    out = np.empty(p.out_shape, np.float32)
    n, k, h, wd = x.shape
    (sh, sw), (ph, pw), (dh, dw) = p.geometry
    row_bias, _, lo1, hi1, flags = p.first
    counter = np.zeros(1, np.int64)  # the next task: taken by each thread in turn
    w2 = np.ascontiguousarray(w2)

    def work(_):
        _tasks(counter, p.bounds, x, w1.reshape(-1), row_bias, lo1, hi1, flags, p.blas, w2,
               out, sh, sw, ph, pw, dh, dw, p.bias, p.lo, p.hi, scratch(p.rows * h * wd,
                                                                       "chain"))

    threads.parallel(work, threads.compute_threads())
    return out


@nb.njit(cache=True, nogil=True)
def _tasks(counter, bounds, x, weights, bias1, lo1, hi1, flags1, blas, w2, out, sh, sw, ph,
           pw, dh, dw, bias2, lo2, hi2, buf):
    """The pair's tasks, taken one at a time from ``counter`` until all are taken (every
    thread of the pool runs this once: no task needs the interpreter). Task ``i`` is
    image ``i // blocks`` and the channels of block ``i % blocks`` (``bounds[j]`` to
    ``bounds[j + 1]``): the 1x1 convolution's rows into ``buf``, by numpy's BLAS
    (``blas``: ``(address, 64-bit)``, address 0 for register tiles) then the bias and
    clamp, or by register tiles with both in registers; then the depthwise convolution
    of those channels into ``out``."""
    n, k, h, wd = x.shape
    blocks, size = len(bounds) - 1, h * wd
    flat = x.reshape(-1)
    none = bias1[:0]
    while True:
        i = _take(counter)
        if i >= n * blocks:
            return
        b, c0, c1 = i // blocks, bounds[i % blocks], bounds[i % blocks + 1]
        rows = buf[:(c1 - c0) * size]
        if blas[0] == 0:  # (as conv_columns calls them: the bias and clamp in registers)
            tiles32.gemm(weights, c0 * k, k, c1 - c0, k, flat, b * k * size, size, size, rows,
                         0, size, bias1[c0:] if len(bias1) else bias1, none, lo1, hi1, flags1)
        else:  # (the call numpy.matmul makes for conv_columns' block of rows)
            numpy_blas.sgemm(blas[0], blas[1] != 0, c1 - c0, size, k, weights, c0 * k, k, flat,
                             b * k * size, size, rows, 0, size)
            bias_clamp(rows, 0, size, c1 - c0, size, bias1[c0:c1] if len(bias1) else bias1,
                       none, lo1, hi1)
        _depthwise_lanes(rows.reshape(1, c1 - c0, h, wd), w2[c0:c1], out[b:b + 1, c0:c1], 0,
                         c1 - c0, sh, sw, ph, pw, dh, dw, np.float32(0),
                         bias2[c0:c1] if len(bias2) else bias2, lo2, hi2)


def _activation(node) -> tuple:
    """A node's own activation ``(name, params)`` (``("", ())`` for none)."""
    if node.domain != "npuc":
        return "", ()
    return node.attrs.get("activation", ""), tuple(node.attrs.get("activation_params", ()))


def _prepare(key, arrays, x, first, second) -> _Prepared:
    p = _Prepared()
    p.key, p.usable = (key[0], key[1], dict(key[2]), dict(key[3])), False
    p.refs = conv_prepared.refs(arrays)
    w1, b1, w2, b2 = arrays
    m = w1.shape[0] if w1.ndim == 4 else -1
    if (x.ndim != 4 or x.dtype != np.float32 or w1.dtype != np.float32 or w1.ndim != 4
            or w1.shape[1] != x.shape[1] or x.shape[1] == 0 or w1.shape[2:] != (1, 1)
            or w2.dtype != np.float32
            or w2.ndim != 4 or w2.shape[:2] != (m, 1) or
            any(b is not None and (b.dtype != np.float32 or b.shape != (m,)) for b in (b1, b2))):
        return p
    try:
        strides, pads, _ = conv_geometry(x, w1, first.attrs, None)
    except Exception:  # (the node's own run reports it)
        return p
    if first.attrs.get("group", 1) != 1 or any(pads) or any(s != 1 for s in strides):
        return p
    first_act = _activation(first)
    second_act = Epilogue(None, *_activation(second)).clamp()
    if Epilogue(None, *first_act).clamp() is None or second_act is None:
        return p  # (an activation through its ONNX kernel: run them apart)
    mid = (x.shape[0], m, *x.shape[2:])
    try:
        strides, pads, dilations = conv_geometry(np.broadcast_to(np.float32(0), mid), w2,
                                                 second.attrs, None)
    except Exception:  # (the node's own run reports it)
        return p
    if second.attrs.get("group", 1) != m or len(strides) != 2:
        return p
    p.out_shape = (mid[0], m, *conv_out_shape(mid[2:], w2.shape[2:], strides, pads,
                                              dilations))
    p.geometry = (tuple(strides), (pads[0], pads[1]), tuple(dilations))
    act, params = first_act
    # (row bias, residual, lo, hi, flags): the 1x1 convolution's epilogue, as the tiles
    # take it
    p.first = Epilogue(None if b1 is None else b1.reshape(m, 1), act, params).tiles()
    if p.first is None:
        return p
    p.bias = _NONE if b2 is None else np.ascontiguousarray(b2)
    p.lo, p.hi = second_act
    if mid[2] * mid[3] > MAX_PLANE:
        return p
    if 0 < x.shape[1] <= conv_columns.TILES_MAX_K:  # register tiles: any block of rows
        p.blas = np.zeros(2, np.int64)
        per_image = max(1, -(-MIN_TASKS // mid[0]))
        even = -(-m // per_image)  # (rounded up to whole groups of lanes)
        step = max(1, -(-even // LANES) * LANES)
        starts = list(range(0, m, step))
    else:  # BLAS: conv_columns' blocks of rows, when it makes one block of positions
        fn, wide = numpy_blas.address()
        cols, rows = conv_columns.blocks_of(x.shape, w1.shape, mid[2:], 1)
        if not fn or len(cols) != 1 or mid[2] * mid[3] == 1 or any(r1 - r0 == 1
                                                                   for r0, r1 in rows):
            return p  # (numpy takes gemv for a single row or column, not cblas_sgemm)
        p.blas = np.array([fn, int(wide)], np.int64)
        starts = [r0 for r0, _ in rows]
    p.bounds = np.array(starts + [m], np.int64)
    p.rows = int(np.diff(p.bounds).max())
    p.usable = all(d > 0 for d in p.out_shape)
    return p


"""Cross-layer equalization of a Conv's output channels into the depthwise Conv that
reads them (Nagel et al. 2019, "Data-Free Quantization", with the ranges measured).

An int8 activation has one scale for the whole tensor. After BatchNormalization is
folded, a Conv's output channels can differ by two orders of magnitude (PP-OCR's first
Conv: 0.35 to 27), so the small channels get a few levels and the next layer sees mostly
rounding. When the only reader is a depthwise Conv (one filter per channel), possibly
through a Relu (``relu(x / s) = relu(x) / s`` for ``s > 0``), channel ``c`` can be
divided by ``s_c`` in the first Conv (weights and bias) and multiplied back in the
depthwise filter ``c``: the model computes the same function (zero padding stays zero),
and with weights scaled per output channel both weight tensors are quantized as well as
before. ``s_c`` brings every channel's measured range to the largest one.

A ``npuc::FusedConv`` with a Relu epilogue (or none) is such a Conv; its measured range
is that of its Relu's output, the values its int8 output holds.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph

from .layers import layer_op

SAMPLES = 8          # calibration samples the channel ranges are measured on
SMALLEST = 1 / 256   # a channel is not scaled up by more than this (dead channels stay)


def _sole_reader(v):
    users = v.uses
    return users[0][0] if len(users) == 1 and users[0][1] == 0 else None


def _depthwise(node, channels: int) -> bool:
    w = node.input(1)
    return (layer_op(node) == "Conv" and w is not None and
            w.const is not None and node.attrs.get("group", 1) == channels and
            w.const.shape[0] == channels and w.const.shape[1] == 1)


def equalizable_pairs(graph: Graph) -> list[tuple]:
    """``(conv, depthwise, via)``: a Conv with constant weights whose output only a
    depthwise Conv reads, directly or through one Relu (``via``, or None)."""
    pairs = []
    for node in graph.nodes:
        w = node.input(1)
        if layer_op(node) != "Conv" or w is None or w.const is None or \
                node.outputs[0] in graph.outputs or \
                node.attrs.get("activation", "") not in ("", "Relu"):
            continue
        channels = w.const.shape[0]
        via, reader = None, _sole_reader(node.outputs[0])
        if reader is not None and reader.op_type == "Relu" and not reader.domain and \
                reader.outputs[0] not in graph.outputs:
            via, reader = reader, _sole_reader(reader.outputs[0])
        if reader is not None and _depthwise(reader, channels):
            pairs.append((node, reader, via))
    return pairs


def channel_maxima(graph: Graph, samples, names: set[str]) -> dict[str, np.ndarray]:
    """Largest |x| per channel (axis 1) of the values ``names`` over ``samples``."""
    from npuc.compiler.executor.interpreter import execute

    out: dict[str, np.ndarray] = {}

    def observe(node, results):
        for v, r in zip(node.outputs, results):
            if v is not None and v.name in names:
                a = np.abs(np.asarray(r, np.float64))
                m = a.max(axis=tuple(i for i in range(a.ndim) if i != 1))
                out[v.name] = np.maximum(out[v.name], m) if v.name in out else m

    for feeds in samples[:SAMPLES]:
        execute(graph, feeds, observe=observe)
    return out


def equalize(graph: Graph, samples) -> int:
    """Equalize every pair of :func:`equalizable_pairs` on the calibration ``samples``;
    returns how many pairs were rescaled (each is logged)."""
    pairs = equalizable_pairs(graph)
    if not pairs or not samples:
        return 0
    maxima = channel_maxima(graph, samples, {c.outputs[0].name for c, _, _ in pairs})
    done = 0
    for conv, dw, _ in pairs:
        r = maxima.get(conv.outputs[0].name)
        if r is None or not np.any(r > 0):
            continue
        s = np.where(r > 0, np.clip(r / r.max(), SMALLEST, 1.0), 1.0)
        if np.all(s > 0.5):
            continue  # ranges close already: nothing to win
        _scale(graph, conv, dw, s)
        done += 1
        log_of(graph).record(
            "quantize", conv.name or conv.outputs[0].name, "equalized",
            f"its output channels span {r.min():.3g} to {r.max():.3g}; each is scaled to "
            f"the largest range and the depthwise '{dw.name}' scales it back, so one int8 "
            "scale fits every channel", smallest_scale=float(s.min()))
    for v in list(graph.constants.values()):
        if not v.uses and v not in graph.outputs:
            graph.remove_constant(v)
    return done


def _scale(graph: Graph, conv, dw, s: np.ndarray) -> None:
    w, b = conv.input(1).const, conv.input(2)
    shape = (-1,) + (1,) * (w.ndim - 1)
    conv.set_input(1, graph.add_constant(f"{conv.input(1).name}_eq",
                                         (w / s.reshape(shape)).astype(w.dtype)))
    if b is not None and b.const is not None:
        conv.set_input(2, graph.add_constant(f"{b.name}_eq",
                                             (b.const / s).astype(b.const.dtype)))
    dw_w = dw.input(1).const
    dw.set_input(1, graph.add_constant(f"{dw.input(1).name}_eq",
                                       (dw_w * s.reshape(shape)).astype(dw_w.dtype)))

"""Numeric hazards of a precision, found before the program is made.

A precision can break a layer outright rather than add noise to it. Three such hazards
are looked for, each reported in the decision log (stage ``numerics``) with the layer
named, and printed on the terminal by the commands:

- **fp16 overflow**: an fp16 chip rounds the inputs of its matrix unit to fp16, whose
  largest number is 65504. A calibration activation beyond it becomes infinity, and
  ``inf * 0`` in the product becomes NaN (a power spectrogram into a mel filterbank does
  this). The layer is kept in float32: on a chip without float32 arithmetic it runs on
  the chip's CPU.
- **int8 (or fp8) range collapse**: a per-tensor scale is set by the largest value; when
  a few huge values set it, nearly every other value rounds to the same level (int8) or
  flushes to zero (fp8, whose 448 / 2^-9 range is narrower than a power spectrogram's) and
  the tensor carries no information (the same spectrogram: 95% of its values become 0,
  and ``Log`` of it a constant). Found as: at least ``COLLAPSE_SHARE`` of the calibration
  values fall on one value of the format while at most half of the float values are
  equal, or at least ``FLUSH_SHARE`` (fp8) or ``INT8_FLUSH_SHARE`` (int8) of its nonzero
  values become zero. The layers that read the tensor are kept in float.
- **non-finite weights**: NaN or infinity in a weight of a matrix or normalization
  operator is a broken model; it is refused, naming the initializer. Infinities in other
  constants (an attention mask's -inf) are meant, and handled by the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.errors import ModelError

FP16_MAX = float(np.finfo(np.float16).max)
COLLAPSE_SHARE = 0.9
FLUSH_SHARE = 0.5       # fp8: its nonzero values flushed to zero
INT8_FLUSH_SHARE = 0.75  # int8: its nonzero values rounded to the zero level
SAMPLES = 4  # calibration samples the checks run on

# operators whose constant inputs at these positions are weights that must be finite
WEIGHT_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,),
                 "FusedConv": (1, 2), "FusedGemm": (1, 2), "FusedMatMul": (1, 2),
                 "BatchNormalization": (1, 2, 3, 4), "LayerNormalization": (1, 2),
                 "LayerNorm": (1, 2), "InstanceNormalization": (1, 2),
                 "GroupNormalization": (1, 2), "Einsum": (0, 1)}


@dataclass
class Hazard:
    """One layer a precision would break, and what is done about it."""

    kind: str        # "fp16 overflow" or "int8 range collapse"
    value: str       # the tensor
    nodes: list      # the layers kept in float because of it
    reason: str

    def record(self, graph) -> None:
        log_of(graph).record("numerics", self.value, self.kind, self.reason,
                             nodes=list(self.nodes), warning=True)


def check_weights(graph, source: str | None = None) -> None:
    """Refuse NaN or infinity in a weight of a matrix or normalization operator."""
    for node in graph.nodes:
        for i in WEIGHT_INPUTS.get(node.op_type, ()):
            v = node.input(i)
            if v is None or v.const is None or np.asarray(v.const).dtype.kind not in "fV":
                continue
            w = np.asarray(v.const, dtype=np.float64)
            bad = ~np.isfinite(w)
            if bad.any():
                first = np.unravel_index(int(np.argmax(bad)), w.shape) if w.ndim else ()
                what = "NaN" if np.isnan(w[first]) else "an infinity"
                where = f"{source}: " if source else ""
                raise ModelError(f"{where}initializer '{v.name}' (input {i} of "
                                 f"{node.describe()}) holds {what} at {list(first)} "
                                 f"({int(bad.sum())} non-finite values): the model is broken")


def _run_observed(graph, calibration, names: set, fn) -> None:
    """Run ``graph`` on the first calibration samples, calling ``fn(name, array)`` for
    each value in ``names`` as it is computed (graph inputs included)."""
    from npuc.compiler.executor.interpreter import execute

    def observe(node, results):
        for out, r in zip(node.outputs, results):
            if out is not None and out.name in names:
                fn(out.name, np.asarray(r))

    for feeds in list(calibration)[:SAMPLES]:
        for v in graph.inputs:
            if v.name in names and v.name in feeds:
                fn(v.name, np.asarray(feeds[v.name]))
        execute(graph, feeds, observe=observe)


def fp16_overflow(graph, calibration, rounded: dict) -> list[Hazard]:
    """The matrix-unit inputs (``rounded``: node -> input positions) whose calibration
    values or weights reach beyond fp16's range."""
    readers: dict[str, list[str]] = {}
    amax: dict[str, float] = {}
    for node in graph.nodes:
        for i in rounded.get(node.name, ()):
            v = node.input(i)
            if v is None:
                continue
            readers.setdefault(v.name, []).append(node.name)
            if v.const is not None and v.const.size:
                amax[v.name] = float(np.abs(np.asarray(v.const, np.float64)).max())

    def seen(name, arr):
        if arr.size and arr.dtype.kind == "f":
            finite = np.abs(arr[np.isfinite(arr)])
            top = float(finite.max()) if finite.size else 0.0
            amax[name] = max(amax.get(name, 0.0), top)

    if calibration:
        _run_observed(graph, calibration, set(readers) - set(amax), seen)
    hazards = []
    for name, top in sorted(amax.items()):
        if top > FP16_MAX:
            nodes = sorted(set(readers[name]))
            hazards.append(Hazard(
                "fp16 overflow", name, nodes,
                f"%{name} reaches {top:.4g} on the calibration data, beyond fp16's largest "
                f"number ({FP16_MAX:g}): rounded to fp16 it would become infinity (and NaN "
                f"after a product with 0), so {', '.join(nodes)} "
                f"{'is' if len(nodes) == 1 else 'are'} computed in float32"))
    return hazards


def int8_levels(params):
    """Float values as int8 under ``params`` (per-tensor scale, zero point), dequantized."""
    scale = float(np.asarray(params.scale).ravel()[0])
    zp = int(np.asarray(params.zero_point).ravel()[0])
    return lambda x: (np.clip(np.round(x / scale) + zp, -128, 127) - zp) * scale


def fp8_levels(amax: float):
    """The fp8 (e4m3) values of float values under the per-tensor scale ``amax / 448``."""
    from .floatq import E4M3
    from .params import fp8_scale

    scale = float(np.asarray(fp8_scale(amax)).ravel()[0])
    return lambda x: (x / scale).astype(E4M3).astype(np.float64) * scale


def range_collapse(graph, calibration, formats: dict, readers: dict,
                   kind: str = "int8 range collapse", flush: float | None = None
                   ) -> list[Hazard]:
    """Activations whose calibration values nearly all land on one value of their narrow
    format though their float values differ, or (when ``flush`` is given) of whose nonzero
    values at least that share become zero. ``formats``: name -> a function from float
    values to the format's values; ``readers``: name -> the nodes that read it."""
    counts: dict[str, list] = {}  # name -> [elements, on the busiest level, equal floats,
    #                                        nonzero, nonzero flushed to zero]

    def seen(name, arr):
        if arr.dtype.kind != "f" or not arr.size:
            return
        x = arr[np.isfinite(arr)].astype(np.float64).ravel()
        if not x.size:
            return
        narrow = formats[name](x)
        _, on_level = np.unique(narrow, return_counts=True)
        _, equal = np.unique(x, return_counts=True)
        c = counts.setdefault(name, [0, 0, 0, 0, 0])
        c[0] += x.size
        c[1] += int(on_level.max())
        c[2] += int(equal.max())
        c[3] += int(np.count_nonzero(x))
        c[4] += int(np.count_nonzero((narrow == 0) & (x != 0)))

    names = {n for n in formats if readers.get(n)}
    if calibration and names:
        _run_observed(graph, calibration, names, seen)
    hazards = []
    fmt = kind.split()[0]
    for name, (total, level, equal, nonzero, flushed) in sorted(counts.items()):
        share, float_share = level / total, equal / total
        if share >= COLLAPSE_SHARE and float_share <= 0.5:
            what = (f"{share:.0%} of its calibration values round to one {fmt} value "
                    f"though only {float_share:.0%} of them are equal in float")
        elif flush is not None and nonzero and flushed / nonzero >= flush:
            what = (f"{flushed / nonzero:.0%} of its nonzero calibration values become zero "
                    f"in {fmt}")
        else:
            continue
        nodes = sorted(set(readers[name]))
        hazards.append(Hazard(
            kind, name, nodes,
            f"%{name}: {what} (the scale is set by a few large values); so "
            f"{', '.join(nodes)} {'stays' if len(nodes) == 1 else 'stay'} in float"))
    return hazards


def keep_for(hazards: list[Hazard]) -> dict[str, str]:
    """``{node: reason}`` of the layers the hazards keep in float."""
    keep = {}
    for h in hazards:
        for n in h.nodes:
            keep.setdefault(n, f"{h.kind}: {h.reason}")
    return keep

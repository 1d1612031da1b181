"""Numeric hazards found at compile time from the calibration data.

Two failures that quantization must never let pass silently:

- **int8 range collapse**: a tensor whose range is set by a few large values while most of
  its values are tiny (a power spectrogram before a Log, a variance before a Reciprocal)
  loses those tiny values in int8: more than half of them fall below half a quantization
  step and become the zero point, and the function after it sees a constant.
- **fp16 overflow**: a tensor with values beyond 65504, the largest fp16 number, becomes
  infinite at fp16 (and NaN after a Log or a subtraction of two infinities). An additive
  softmax mask is not one: its huge negative values (HuggingFace writes ``finfo.min``)
  only ever reach a softmax, where ``exp`` of anything 104 below the row's largest score
  is 0 in float32 as well, so at fp16 (-65504 or -inf) they give the same probabilities
  (:func:`softmax_mask`).

Both are judged from :class:`Magnitudes`: the smallest and largest value of each tensor
and a histogram of ``|x|`` on fixed power-of-two bins (four per octave), which merges
exactly across batches or workers. :func:`find_hazards` returns the hazards with the
node that produces the tensor, so the accuracy recovery can move it to a format that
holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npuc.ir.errors import ModelError

FP16_MAX = 65504.0
# |x| bins: [2^(e/4), 2^((e+1)/4)) for e in [-4*64, 4*64); exact zeros apart
_LOW, _HIGH, _PER_OCTAVE = -64, 64, 4
_NBINS = (_HIGH - _LOW) * _PER_OCTAVE
# operators that turn a collapse of small values into a wrong answer
SENSITIVE = {"Log": 0, "Reciprocal": 0, "Div": 1, "Sqrt": 0, "Pow": 0}


@dataclass
class Magnitude:
    """Range and a fixed-bin histogram of ``|x|`` of one tensor; merges exactly."""

    lo: float = np.inf
    hi: float = -np.inf
    zeros: int = 0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(_NBINS, np.int64))

    def observe(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).ravel()
        x = x[np.isfinite(x)]
        if not x.size:
            return
        self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
        a = np.abs(x)
        nz = a[a > 0]
        self.zeros += int(a.size - nz.size)
        e = np.floor(np.log2(nz) * _PER_OCTAVE).astype(np.int64) - _LOW * _PER_OCTAVE
        self.hist += np.bincount(np.clip(e, 0, _NBINS - 1), minlength=_NBINS)

    def merge(self, other: "Magnitude") -> None:
        self.lo, self.hi = min(self.lo, other.lo), max(self.hi, other.hi)
        self.zeros += other.zeros
        self.hist += other.hist

    @property
    def count(self) -> int:
        return int(self.hist.sum()) + self.zeros

    def share_below(self, t: float) -> float:
        """The share of values with ``|x| < t`` (to a quarter octave)."""
        if self.count == 0:
            return 0.0
        if t <= 0:
            return 0.0
        edge = int(np.floor(np.log2(t) * _PER_OCTAVE)) - _LOW * _PER_OCTAVE
        below = self.hist[:max(0, min(edge, _NBINS))].sum() + self.zeros
        return float(below) / self.count


def magnitudes(graph, samples, names=None) -> dict[str, Magnitude]:
    """:class:`Magnitude` of every float activation of ``graph`` over ``samples``."""
    from .calibrate import observe_run, observed_values

    watched = [v.name for v in observed_values(graph)]
    if names is not None:
        watched = [n for n in watched if n in set(names)]
    out = {n: Magnitude() for n in watched}

    def see(name, x):
        if name in out:
            out[name].observe(x)

    for feeds in samples:
        # the float model's activations, as calibration runs it (float32 products)
        observe_run(graph, feeds, see)
    return out


@dataclass
class Hazard:
    """One hazard: ``kind`` (``int8-collapse``, ``fp8-collapse`` or ``fp16-overflow``) at
    ``value``."""

    kind: str
    value: str
    node: str       # the producer of the value ('' for a model input)
    reader: str     # the node that suffers from it
    message: str


def find_hazards(graph, calibration_stats, precisions=("int8", "fp16")) -> list[Hazard]:
    """Hazards of computing ``graph`` at ``precisions``, judged from ``calibration_stats``
    (value name -> :class:`Magnitude`, as :func:`magnitudes` gives)."""
    found = []
    for node in graph.nodes:
        for v in node.outputs:
            m = calibration_stats.get(v.name) if v is not None else None
            if m is None or m.count == 0:
                continue
            amax = max(-m.lo, m.hi)
            if "fp16" in precisions and amax > FP16_MAX and not softmax_mask(v, m):
                found.append(Hazard("fp16-overflow", v.name, node.name, node.name,
                                    f"%{v.name} reaches {amax:.4g}, beyond fp16's largest "
                                    f"number {FP16_MAX:g}: it would be infinite at fp16"))
            if "int8" in precisions:
                found.extend(_collapse(node, v, m))
            if "fp8" in precisions:
                found.extend(_fp8_flush(node, v, m, amax))
    return found


# Operators a mask passes through on its way to the softmax unchanged in sign and size
# (input index -> passes); Add of scores keeps a huge negative huge and negative.
_MASK_PATH = {"Add": (0, 1), "Sub": (0,), "Where": (1, 2), "Reshape": (0,), "Unsqueeze": (0,),
              "Squeeze": (0,), "Expand": (0,), "Transpose": (0,), "Identity": (0,),
              "Cast": (0,), "Concat": None, "Slice": (0,), "Tile": (0,)}


def softmax_mask(value, m: Magnitude) -> bool:
    """True when ``value`` overflows fp16 only on the negative side and every path from
    it reaches a softmax as an additive term (an attention mask): the softmax's
    probabilities are then the same at fp16 as in float32, since ``exp(x - max)`` is 0 for
    any ``x`` below ``max - 104`` (float32's smallest number is ``2^-149``), unless a
    whole row is masked, which no real input has."""
    if m.hi > FP16_MAX:
        return False
    todo, seen = [value], set()
    while todo:
        v = todo.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if not v.uses or (v.graph is not None and any(o is v for o in v.graph.outputs)):
            return False
        for user, i in v.uses:
            op = user.op_type
            if user.domain == "npuc" and op == "Attention":
                if i != 3 or user.attrs.get("mask_mode", "add") != "add":
                    return False
            elif user.domain in ("", "ai.onnx") and op == "Softmax":
                continue
            elif user.domain in ("", "ai.onnx") and op in _MASK_PATH and \
                    (_MASK_PATH[op] is None or i in _MASK_PATH[op]):
                todo.extend(o for o in user.outputs if o is not None)
            else:
                return False
    return True


def _fp8_flush(node, v, m: Magnitude, amax: float) -> list[Hazard]:
    """fp8 (e4m3) keeps 448 / 2^-9 of range under its per-tensor scale ``amax / 448``:
    a matrix-unit input most of whose nonzero values lie below half its smallest step
    flushes them to zero (a power spectrum into a filterbank does)."""
    from .floatq import ROUNDED

    nonzero = m.count - m.zeros
    if amax <= 0 or nonzero <= 0:
        return []
    floor = amax / 448.0 * 2.0 ** -10
    share = (m.share_below(floor) * m.count - m.zeros) / nonzero
    if share < 0.5:
        return []
    out = []
    for user, i in v.uses:
        if i in ROUNDED.get((user.domain if user.domain != "ai.onnx" else "", user.op_type), ()):
            out.append(Hazard("fp8-collapse", v.name, node.name, user.name,
                              f"{share:.0%} of the nonzero values of %{v.name} are below "
                              f"fp8's smallest step under its scale ({floor:.3g}): they "
                              f"become 0 in {user.op_type} '{user.name}'"))
    return out


def _collapse(node, v, m: Magnitude) -> list[Hazard]:
    out = []
    step = (max(m.hi, 0.0) - min(m.lo, 0.0)) / 255.0
    for user, i in v.uses:
        if user.domain or SENSITIVE.get(user.op_type) != i:
            continue
        share = m.share_below(step / 2)
        if share >= 0.5:
            out.append(Hazard("int8-collapse", v.name, node.name, user.name,
                              f"{share:.0%} of the values of %{v.name} are below half an "
                              f"int8 step ({step / 2:.3g}): they become one value and "
                              f"{user.op_type} '{user.name}' sees a constant"))
    return out


def collapsed(m: Magnitude | None) -> bool:
    """True when most values of a tensor fall below half an int8 step of its range."""
    if m is None or m.count == 0:
        return False
    step = (max(m.hi, 0.0) - min(m.lo, 0.0)) / 255.0
    return m.share_below(step / 2) >= 0.5


def collapse_region(graph, value: str, stats: dict) -> list[str]:
    """The nodes that compute ``value`` from tensors that collapse at int8 as well: the
    producer, and back through every input that also collapses (a square or a sum of
    squares collapses because what it squares does)."""
    producers = {o.name: n for n in graph.nodes for o in n.outputs if o is not None}
    out, todo, seen = [], [value], set()
    while todo:
        name = todo.pop()
        node = producers.get(name)
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        out.append(node.name)
        for v in node.inputs:
            if v is not None and v.const is None and collapsed(stats.get(v.name)):
                todo.append(v.name)
    return out


def sensitive_inputs(graph) -> list[str]:
    """The tensors an int8 collapse would hurt: those read by :data:`SENSITIVE` operators
    (so a model without them needs no extra pass over the calibration data)."""
    out = []
    for node in graph.nodes:
        i = SENSITIVE.get(node.op_type) if not node.domain else None
        v = node.input(i) if i is not None and i < len(node.inputs) else None
        if v is not None and v.const is None and v.name not in out:
            out.append(v.name)
    return out


# operators whose constant inputs at these positions are weights that must be finite
WEIGHT_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,),
                 "FusedConv": (1, 2), "FusedGemm": (1, 2), "FusedMatMul": (1, 2),
                 "BatchNormalization": (1, 2, 3, 4), "LayerNormalization": (1, 2),
                 "LayerNorm": (1, 2), "InstanceNormalization": (1, 2),
                 "GroupNormalization": (1, 2), "Einsum": (0, 1)}


def check_weights(graph, source: str | None = None) -> None:
    """Refuse NaN or infinity in a weight of a matrix or normalization operator (each
    weight read once, piece by piece: a mapped weight is never all in memory)."""
    from npuc.compiler.mapped import first_nonfinite

    seen: set[str] = set()
    for node in graph.nodes:
        for i in WEIGHT_INPUTS.get(node.op_type, ()):
            v = node.input(i)
            if v is None or v.const is None or np.asarray(v.const).dtype.kind not in "fV" \
                    or v.name in seen:
                continue
            seen.add(v.name)
            bad = first_nonfinite(np.asarray(v.const))
            if bad is not None:
                first, nan, count, _ = bad
                what = "NaN" if nan else "an infinite value"
                where = f"{source}: " if source else ""
                raise ModelError(f"{where}initializer '{v.name}' (input {i} of "
                                 f"{node.describe()}) holds {what} at {list(first)} "
                                 f"({count} non-finite values): the model is broken")



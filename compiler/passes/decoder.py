"""Decoder patterns recognized as npuc operators: RMSNorm, rotary embedding, gated MLP.

- ``fuse-rmsnorm``: LlamaRMSNorm as the exporters write it,
  ``w * (x * Reciprocal(Sqrt(ReduceMean(x ^ 2) + eps)))`` (or ``x / Sqrt(...)``, or
  ``x * (1 / Sqrt(...))``, TorchScript's ``rsqrt``), becomes
  ``npuc::RMSNorm(x, w)`` when the mean runs over the trailing axes.
- ``fuse-rotary``: ``x * cos + Concat(-x[..., d/2:], x[..., :d/2]) * sin`` (HF's
  ``rotate_half``) becomes ``npuc::Rotary(x, cos, sin)``.
- ``fuse-gated-mlp``: ``act(x @ Wg) * (x @ Wu)`` with SiLU written as ``g * Sigmoid(g)``
  or GELU becomes ``npuc::GatedMLP(x, Wg, Wu)``: one kernel reads x once for both
  projections and never writes the gate or up activations out.

Each rule says in the decision log why it did not apply where it nearly did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.compiler import ops  # noqa: F401  (declares the npuc operators)
from npuc.ir.schema import attr_or_default

from .base import RulePass, register
from .layernorm import _axes
from .rewrite import Rule

SQUARES = ("Pow(x, 2.0)", "Mul(x, x)")
RMS = "Sqrt(Add(m:ReduceMean({sq}, a?), eps))"
INVERSES = ("Reciprocal({0})", "Div(one, {0})")
NORMALIZED = tuple(f"Mul(x, {inv.format(RMS.format(sq=sq))})" for inv in INVERSES
                   for sq in SQUARES) + tuple(f"Div(x, {RMS.format(sq=sq)})" for sq in SQUARES)


class RMSNormPattern(Rule):
    """x / sqrt(mean(x^2) + eps) [* w] is one npuc::RMSNorm."""

    pattern = tuple(f"Mul({n}, w)" for n in NORMALIZED) + NORMALIZED

    def check(self, m):
        t = m.x.type
        if t is None or t.shape is None or not t.dtype.is_float:
            return "x is not a float tensor of known rank"
        rank = len(t.shape)
        axes = _axes(m.m, m.a)
        if axes is None:
            return "the reduced axes are not constant"
        axes = sorted(a % rank for a in axes)
        if axes != list(range(rank - len(axes), rank)):
            return "it does not normalize over the trailing axes"
        if attr_or_default(m.m, "keepdims") not in (None, 1):
            return "the ReduceMean drops the reduced axes"
        eps = m.const("eps")
        if eps is None or eps.size != 1:
            return "epsilon is not a scalar constant"
        if "one" in m.values and (m.const("one") is None or m.const("one").size != 1 or
                                  float(m.const("one").reshape(-1)[0]) != 1.0):
            return "the inverse is not 1 / Sqrt(...)"
        shape = tuple(t.shape[axes[0]:])
        if not all(isinstance(d, int) for d in shape):
            return "the normalized shape is not static"
        if "w" in m.values:
            w = m.const("w")
            if w is None:
                return "the scale is not a constant"
            if w.ndim > len(shape) or np.broadcast_shapes(w.shape, shape) != shape:
                return "the scale is not one value per normalized element"

    def rewrite(self, m, b):
        t = m.x.type
        rank = len(t.shape)
        first = sorted(a % rank for a in _axes(m.m, m.a))[0]
        shape = tuple(t.shape[first:])
        dt = t.dtype.numpy
        w = np.ones(shape, dt) if "w" not in m.values else \
            np.ascontiguousarray(np.broadcast_to(m.const("w"), shape).astype(dt))
        m.root.graph.opset.setdefault("npuc", 1)
        return b.op("RMSNorm", m.x, b.const(w), domain="npuc", axis=first - rank,
                    epsilon=float(m.const("eps").reshape(-1)[0]),
                    out_type=m.root.outputs[0].type)


def _slice_bounds(m, name: str, rank: int):
    """``(start, end)`` of a Slice over the last axis with step 1, or None."""
    start, end, axes = m.const(f"{name}0"), m.const(f"{name}1"), m.const(f"{name}2")
    steps = m.const(f"{name}3") if m.values.get(f"{name}3") is not None else np.ones(1)
    if start is None or end is None or axes is None or steps is None:
        return None
    if start.size != 1 or end.size != 1 or axes.size != 1 or int(steps.reshape(-1)[0]) != 1:
        return None
    if int(axes.reshape(-1)[0]) % rank != rank - 1:
        return None
    return int(start.reshape(-1)[0]), int(end.reshape(-1)[0])


class RotaryPattern(Rule):
    """x * cos + rotate_half(x) * sin is one npuc::Rotary."""

    pattern = ("Add(Mul(x, cos), Mul(cat:Concat(Neg(Slice(x, h0, h1, h2, h3?)), "
               "Slice(x, l0, l1, l2, l3?)), sin))",)

    def check(self, m):
        t = m.x.type
        if t is None or t.shape is None or not isinstance(t.shape[-1], int):
            return "the last axis of x is not static"
        rank, d = len(t.shape), t.shape[-1]
        if d % 2:
            return "the rotated axis has an odd size"
        axis = m.cat.attrs.get("axis")
        if axis is None or axis % rank != rank - 1:
            return "the halves are not joined along the last axis"
        high, low = _slice_bounds(m, "h", rank), _slice_bounds(m, "l", rank)
        if high is None or low is None:
            return "the halves are not constant slices of the last axis"
        if low[0] != 0 or min(low[1], d) != d // 2 or high[0] != d // 2 or high[1] < d:
            return "the slices are not the two halves of the last axis"
        for name in ("cos", "sin"):
            s = getattr(m.values[name].type, "shape", None)
            if s is None or len(s) > rank:
                return f"the {name} table does not broadcast to x"
            try:
                if np.broadcast_shapes(tuple(s), tuple(t.shape)) != tuple(t.shape):
                    return f"the {name} table does not broadcast to x"
            except (ValueError, TypeError):
                return f"the {name} table does not broadcast to x"

    def rewrite(self, m, b):
        m.root.graph.opset.setdefault("npuc", 1)
        return b.op("Rotary", m.x, m.cos, m.sin, domain="npuc",
                    out_type=m.root.outputs[0].type)


GATES = {"Mul(g:MatMul(x, wg), Sigmoid(g))": "Silu", "Gelu(g:MatMul(x, wg))": "Gelu",
         "npuc::Gelu(g:MatMul(x, wg))": "Gelu"}


class GatedMLPPattern(Rule):
    """act(x @ Wg) * (x @ Wu) is one npuc::GatedMLP."""

    pattern = tuple(f"Mul({gate}, MatMul(x, wu))" for gate in GATES)

    def check(self, m):
        wg, wu = m.const("wg"), m.const("wu")
        if wg is None or wu is None:
            return "the gate and up weights are not constants"
        if wg.ndim != 2 or wg.shape != wu.shape:
            return "the gate and up weights are not two matrices of one shape"
        t = m.x.type
        if t is None or t.shape is None or len(t.shape) < 2:
            return "x is not a matrix or a batch of them"

    def rewrite(self, m, b):
        gate = m.root.inputs[0].producer
        if gate.op_type == "Mul":
            act = "Silu"
        else:
            approx = gate.attrs.get("approximate", "none")
            act = "GeluTanh" if approx == "tanh" else "Gelu"
        m.root.graph.opset.setdefault("npuc", 1)
        return b.op("GatedMLP", m.x, m.wg, m.wu, domain="npuc", activation=act,
                    out_type=m.root.outputs[0].type)


@register
@dataclass
class FuseRMSNorm(RulePass):
    """Recognize RMSNorm (Pow, ReduceMean, Add, Sqrt, Reciprocal, Mul) as npuc::RMSNorm."""

    name = "fuse-rmsnorm"
    rules = (RMSNormPattern,)


@register
@dataclass
class FuseRotary(RulePass):
    """Recognize rotary position embedding (rotate_half form) as npuc::Rotary."""

    name = "fuse-rotary"
    rules = (RotaryPattern,)


@register
@dataclass
class FuseGatedMLP(RulePass):
    """Recognize a SiLU- or GELU-gated MLP's gate and up projections as npuc::GatedMLP."""

    name = "fuse-gated-mlp"
    rules = (GatedMLPPattern,)

"""LayerNorm recognized from the nodes older exporters write it as.

    mean = ReduceMean(x, axes)         d = x - mean
    var  = ReduceMean(d ^ 2, axes)     y = d / sqrt(var + eps) * scale + bias

becomes ``LayerNormalization(x, scale, bias) {axis, epsilon}`` (opset 17 and later),
when the reduced axes are the trailing ones and scale and bias are constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.ir.schema import attr_or_default

from .base import RulePass, register
from .rewrite import Rule

NORM = ("Div(d:Sub(x, m1:ReduceMean(x, a1?)), "
        "Sqrt(Add(m2:ReduceMean({square}, a2?), eps)))")
SQUARES = ("Pow(d, 2.0)", "Mul(d, d)")


def _axes(node, axes_value):
    if axes_value is not None:
        return None if axes_value.const is None else [int(a) for a in axes_value.const]
    return node.attrs.get("axes")


class LayerNormPattern(Rule):
    """ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div (Mul, Add) is one LayerNorm."""

    pattern = tuple(f"Add(Mul({NORM.format(square=s)}, scale), bias)" for s in SQUARES) + \
        tuple(NORM.format(square=s) for s in SQUARES)

    def check(self, m):
        graph = m.root.graph
        if (graph.opset_of("") or 0) < 17:
            return "the opset is older than 17, which has no LayerNormalization"
        t = m.x.type
        if t is None or t.shape is None:
            return "the rank of x is unknown"
        rank = len(t.shape)
        a1, a2 = _axes(m.m1, m.a1), _axes(m.m2, m.a2)
        if a1 is None or a2 is None:
            return "the reduced axes are not constant"
        a1, a2 = sorted(a % rank for a in a1), sorted(a % rank for a in a2)
        if a1 != a2 or a1 != list(range(rank - len(a1), rank)):
            return "it does not normalize over the trailing axes"
        if attr_or_default(m.m1, "keepdims") not in (None, 1) or \
                attr_or_default(m.m2, "keepdims") not in (None, 1):
            return "a ReduceMean drops the reduced axes"
        eps = m.const("eps")
        if eps is None or eps.size != 1:
            return "epsilon is not a scalar constant"
        shape = tuple(t.shape[a1[0]:])
        if not all(isinstance(d, int) for d in shape):
            return "the normalized shape is not static"
        for name in ("scale", "bias"):
            if name in m.values:
                c = m.const(name)
                if c is None:
                    return f"the {name} is not a constant"
                if c.size != int(np.prod(shape)) and c.size != 1:
                    return f"the {name} is not one value per normalized element"

    def rewrite(self, m, b):
        t = m.x.type
        rank = len(t.shape)
        first = sorted(a % rank for a in _axes(m.m1, m.a1))[0]
        shape = tuple(t.shape[first:])
        dt = t.dtype.numpy
        scale = np.ones(shape, dt) if "scale" not in m.values else \
            np.broadcast_to(m.const("scale"), shape).astype(dt)
        bias = np.zeros(shape, dt) if "bias" not in m.values else \
            np.broadcast_to(m.const("bias"), shape).astype(dt)
        return b.op("LayerNormalization", m.x, b.const(scale), b.const(bias),
                    axis=first - rank, epsilon=float(m.const("eps").reshape(-1)[0]),
                    out_type=m.root.outputs[0].type)


@register
@dataclass
class FuseLayerNorm(RulePass):
    """Recognize LayerNorm from its decomposed form (LayerNormalization)."""

    name = "fuse-layernorm"
    rules = (LayerNormPattern,)

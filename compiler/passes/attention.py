"""Attention recognized: MatMul, scale, mask, Softmax, MatMul → ``npuc::Attention``.

    scores = q @ kt  [/ c or * c]  [+ mask, or Where(mask, ., fill)]
    y      = Softmax(scores, axis=-1) @ v

The scale must be a scalar constant and the Softmax must run over the last axis; the
mask may be anything that broadcasts (a constant causal mask or a computed padding
mask). An NPU runs this as one fused kernel that never writes the scores out.
"""

from __future__ import annotations

from dataclasses import dataclass

from npuc.ir.graph import Graph
from npuc.ir.schema import attr_or_default

from . import npuc_ops  # noqa: F401  (declares npuc::Attention)
from .base import Pass, register
from .rewrite import Rule, apply_rules

SCORES = ("s:MatMul(q, kt)", "Div(s:MatMul(q, kt), c)", "Mul(s:MatMul(q, kt), c)")
MASKED = ("{0}", "Add({0}, mask)", "Where(mask, {0}, fill)")


class AttentionPattern(Rule):
    """Scaled, masked dot-product attention becomes one npuc::Attention."""

    pattern = tuple(f"MatMul(sm:Softmax({masked.format(s)}), v)" for s in SCORES
                    for masked in MASKED)

    def check(self, m):
        t = m.s.outputs[0].type
        rank = None if t is None or t.shape is None else len(t.shape)
        axis = attr_or_default(m.sm, "axis")
        if rank is None or axis not in (-1, rank - 1):
            return "the Softmax does not run over the last axis"
        for name in ("c", "fill"):
            if name in m.values and (m.const(name) is None or m.const(name).size != 1):
                return f"the {'scale' if name == 'c' else 'mask fill'} is not a scalar constant"
        if "mask" in m.values and m.mask.type is not None and m.mask.type.shape is not None \
                and len(m.mask.type.shape) > rank:
            return "the mask has more axes than the scores"

    def rewrite(self, m, b):
        attrs = {}
        if "c" in m.values:
            c = float(m.const("c").reshape(-1)[0])
            attrs["scale"] = 1.0 / c if m.s.outputs[0].uses[0][0].op_type == "Div" else c
        mask = m.values.get("mask")
        if "fill" in m.values:
            attrs["mask_mode"] = "select"
            attrs["mask_fill"] = float(m.const("fill").reshape(-1)[0])
        m.root.graph.opset.setdefault("npuc", 1)
        return b.op("Attention", m.q, m.kt, m.v, mask, domain="npuc",
                    out_type=m.root.outputs[0].type, **attrs)


@register
@dataclass
class FuseAttention(Pass):
    """Recognize attention (MatMul, scale, mask, Softmax, MatMul) as npuc::Attention."""

    name = "fuse-attention"

    def run(self, graph: Graph) -> bool:
        return apply_rules(graph, [AttentionPattern()], self.name) > 0

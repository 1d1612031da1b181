"""Attention recognized: MatMul, scale, mask, Softmax, MatMul → ``npuc::Attention``.

    scores = q @ kt  [/ c or * c]  [+ mask, or Where(mask, ., fill)]
    y      = Softmax(scores, axis=-1) @ v

also in the form of torch's SDPA export, the scale's square root applied to q and to kt
separately and NaN probabilities zeroed before the second product::

    scores = (q * c1) @ (kt * c2)  [+ mask]
    p      = Softmax(scores);  y = Where(IsNaN(p), 0, p) @ v

The scale must be a scalar constant and the Softmax must run over the last axis; the
mask may be anything that broadcasts (a constant causal mask or a computed padding
mask). An NPU runs this as one fused kernel that never writes the scores out.

Two more rules finish the job for decoders:

- grouped-query attention: keys and values repeated per group of query heads with
  ``Unsqueeze``, ``Expand``, ``Reshape`` (HF's ``repeat_kv``) are read unrepeated by the
  fused op (``kv_repeat``), so the repeated copies are never made;
- ONNX ``Attention`` (opset 23) on 4-D inputs with no cache inputs or extra outputs
  becomes ``npuc::Attention``.
"""

from __future__ import annotations

from dataclasses import dataclass

from npuc.compiler import ops  # noqa: F401  (declares npuc::Attention)
from npuc.ir.graph import Graph
from npuc.ir.schema import attr_or_default

from .base import Pass, register
from .rewrite import Rule, apply_rules

# the most specific forms first: the first form that matches and passes the check wins
SCORES = ("s:MatMul(Mul(q, cq), Mul(kt, ck))", "s:MatMul(Mul(q, cq), tk:Transpose(Mul(k, ck)))",
          "Div(s:MatMul(q, kt), c)", "Mul(s:MatMul(q, kt), c)", "s:MatMul(q, kt)")
MASKED = ("{0}", "Add({0}, mask)", "Where(mask, {0}, fill)")
PROBS = ("sm:Softmax({0})", "Where(IsNaN(sm:Softmax({0})), 0.0, sm)")


class AttentionPattern(Rule):
    """Scaled, masked dot-product attention becomes one npuc::Attention."""

    pattern = tuple(f"MatMul({probs.format(masked.format(s))}, v)" for s in SCORES
                    for masked in MASKED for probs in PROBS)

    def check(self, m):
        t = m.s.outputs[0].type
        rank = None if t is None or t.shape is None else len(t.shape)
        axis = attr_or_default(m.sm, "axis")
        if rank is None or axis not in (-1, rank - 1):
            return "the Softmax does not run over the last axis"
        for name in ("c", "cq", "ck", "fill"):
            if name in m.values and (m.const(name) is None or m.const(name).size != 1):
                return f"the {'mask fill' if name == 'fill' else 'scale'} is not a scalar " \
                    "constant"
        if "mask" in m.values and m.mask.type is not None and m.mask.type.shape is not None \
                and len(m.mask.type.shape) > rank:
            return "the mask has more axes than the scores"

    def rewrite(self, m, b):
        attrs = {}
        if "c" in m.values:
            c = float(m.const("c").reshape(-1)[0])
            attrs["scale"] = 1.0 / c if m.s.outputs[0].uses[0][0].op_type == "Div" else c
        if "cq" in m.values:
            attrs["scale"] = float(m.const("cq").reshape(-1)[0]) * \
                float(m.const("ck").reshape(-1)[0])
        if m.root.inputs[0].producer.op_type == "Where":
            attrs["nan_to_zero"] = 1
        # the key's scale may have been moved in front of its transpose
        kt = m.kt if "kt" in m.values else b.op("Transpose", m.k, perm=m.tk.attrs["perm"])
        mask = m.values.get("mask")
        if "fill" in m.values:
            attrs["mask_mode"] = "select"
            attrs["mask_fill"] = float(m.const("fill").reshape(-1)[0])
        m.root.graph.opset.setdefault("npuc", 1)
        return b.op("Attention", m.q, kt, m.v, mask, domain="npuc",
                    out_type=m.root.outputs[0].type, **attrs)


@register
@dataclass
class FuseAttention(Pass):
    """Recognize attention (MatMul, scale, mask, Softmax, MatMul) as npuc::Attention."""

    name = "fuse-attention"

    def run(self, graph: Graph) -> bool:
        from .attention_gqa import AbsorbRepeatKV, OnnxAttention

        rules = [AttentionPattern(), OnnxAttention()]
        changed = apply_rules(graph, rules, self.name) > 0
        return apply_rules(graph, [AbsorbRepeatKV()], self.name) > 0 or changed

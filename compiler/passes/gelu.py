"""GELU recognized in the two forms exporters write it in.

- exact: ``x * 0.5 * (1 + erf(x / sqrt(2)))`` (BERT, ViT);
- tanh: ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`` (GPT-2).

Each is written in a few association orders (where the 0.5 is multiplied in); the
pattern engine tries both orders of every Add and Mul itself. The result is ONNX Gelu
when the graph's opset has it (20 and later), else ``npuc::Gelu``.
"""

from __future__ import annotations

from dataclasses import dataclass

from npuc.compiler import ops  # noqa: F401  (declares npuc::Gelu)

from .base import RulePass, register
from .rewrite import Rule


def _halves(x_plus: str) -> tuple[str, ...]:
    """``0.5 * x * x_plus`` in the association orders exporters produce."""
    return (f"Mul(Mul(x, {x_plus}), 0.5)", f"Mul(Mul(x, 0.5), {x_plus})",
            f"Mul(x, Mul({x_plus}, 0.5))")


ERF = [f"Add(Erf({arg}), 1.0)" for arg in ("Div(x, 1.4142135)", "Mul(x, 0.70710678)")]
TANH = [f"Add(Tanh(Mul(0.7978846, Add(x, Mul(0.044715, {cube})))), 1.0)"
        for cube in ("Pow(x, 3.0)", "Mul(Mul(x, x), x)")]


class GeluPattern(Rule):
    """GELU written out with Erf or Tanh becomes one Gelu node."""

    approximate = "none"

    def check(self, m):
        t = m.x.type
        if t is None or not t.dtype.is_float:
            return "x is not a float tensor"

    def rewrite(self, m, b):
        opset = m.root.graph.opset_of("") or 0
        if opset >= 20:
            return b.op("Gelu", m.x, approximate=self.approximate,
                        out_type=m.root.outputs[0].type)
        m.root.graph.opset.setdefault("npuc", 1)
        return b.op("Gelu", m.x, domain="npuc", approximate=self.approximate,
                    out_type=m.root.outputs[0].type)


class GeluErf(GeluPattern):
    """GELU written out with Erf becomes one Gelu node."""

    pattern = tuple(p for e in ERF for p in _halves(e))


class GeluTanh(GeluPattern):
    """GELU written out with Tanh becomes one Gelu node (approximate=tanh)."""

    pattern = tuple(p for t in TANH for p in _halves(t))
    approximate = "tanh"


@register
@dataclass
class FuseGelu(RulePass):
    """Recognize GELU in its erf and tanh forms."""

    name = "fuse-gelu"
    rules = (GeluErf, GeluTanh)

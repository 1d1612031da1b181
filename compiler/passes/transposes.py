"""Transposes sunk toward their users and cancelled.

A Transpose commutes with elementwise operators, so it can move below them:

    U(Transpose(x, p))                     = Transpose(U(x), p)
    B(Transpose(x, p), Transpose(y, p))    = Transpose(B(x, y), p)     (two become one)
    B(Transpose(x, p), c)                  = Transpose(B(x, c'), p)    (c' = c permuted back)

Moving them down brings pairs together, and a pair cancels (or becomes one Transpose).
Layout changes an exporter spreads around a graph (NCHW/NHWC round trips) disappear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.ir.graph import Graph

from .base import Pass, register
from .canonical_shapes import RemoveTranspose, TransposePair
from .rewrite import Rule, apply_rules

UNARY = ["Relu", "Sigmoid", "Tanh", "Neg", "Abs", "Exp", "Log", "Sqrt", "Erf", "Softsign",
         "LeakyRelu", "HardSwish", "HardSigmoid", "Elu", "Gelu", "Cast", "Reciprocal",
         "Floor", "Ceil", "Round", "Sign", "Not"]
BINARY = ["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Equal", "Less", "Greater", "And",
          "Or"]


def _perm(node):
    perm = node.attrs.get("perm")
    if perm is None:
        t = node.inputs[0].type
        if t is None or t.shape is None:
            return None
        perm = list(range(len(t.shape) - 1, -1, -1))
    return list(perm)


class SinkThroughUnary(Rule):
    """A Transpose moves below an elementwise operator with one input."""

    pattern = tuple(f"{op}(t:Transpose(x))" for op in UNARY)

    def check(self, m):
        if _perm(m.t) is None:
            return "the rank is unknown"

    def rewrite(self, m, b):
        y = b.op(m.root.op_type, m.x, name=m.root.name, **m.root.attrs)
        return b.op("Transpose", y, perm=_perm(m.t), name=m.t.name,
                    out_type=m.root.outputs[0].type)


class SinkThroughBinary(Rule):
    """Two equal Transposes, or one and a constant, move below a binary operator."""

    pattern = tuple(f"{op}(t:Transpose(x), u:Transpose(y))" for op in BINARY) + \
        tuple(f"{op}(t:Transpose(x), y)" for op in BINARY)

    def check(self, m):
        perm = _perm(m.t)
        if perm is None:
            return "the rank is unknown"
        if "u" in m.nodes:
            if _perm(m.u) != perm:
                return "the two Transposes differ"
            return None
        c = m.const("y")
        if c is None:
            return "the other operand is neither a Transpose nor a constant"
        if c.ndim > len(perm):
            return "the constant has more axes than the Transpose"

    def rewrite(self, m, b):
        perm = _perm(m.t)
        if "u" in m.nodes:
            other = m.y
        else:
            c = m.const("y")
            c = c.reshape((1,) * (len(perm) - c.ndim) + c.shape)
            other = b.const(np.ascontiguousarray(np.transpose(c, np.argsort(perm))))
        # keep the operand order: the Transpose was the first or the second input
        first = m.root.inputs[0] is m.t.outputs[0]
        args = (m.x, other) if first else (other, m.x)
        y = b.op(m.root.op_type, *args, name=m.root.name, **m.root.attrs)
        return b.op("Transpose", y, perm=perm, name=m.t.name, out_type=m.root.outputs[0].type)


@register
@dataclass
class SinkTransposes(Pass):
    """Move Transposes below elementwise operators and cancel the pairs that meet."""

    name = "sink-transposes"

    def run(self, graph: Graph) -> bool:
        rules = [SinkThroughUnary(), SinkThroughBinary(), TransposePair(), RemoveTranspose()]
        return apply_rules(graph, rules, self.name) > 0

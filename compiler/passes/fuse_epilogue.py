"""Bias and activation epilogues fused into Conv, Gemm and MatMul.

- ``Add(Conv(x, w), c)`` with ``c`` a per-channel constant is the Conv's bias;
- ``Add(MatMul(a, w), c)`` with ``c`` a constant on the last axis is ``npuc::FusedMatMul``
  with a bias (what a Linear layer exports to);
- an activation after a Conv, Gemm or MatMul (plain or already fused, without an
  activation yet), or after a Reshape of one, becomes the ``activation`` of
  ``npuc::FusedConv``, ``FusedGemm`` or ``FusedMatMul``: Relu, LeakyRelu, Clip (constant
  bounds), Sigmoid, Tanh, HardSigmoid, HardSwish, Elu, Gelu (ONNX or npuc, both
  approximations).

An NPU runs the epilogue on the accumulator as it drains, so the activation costs no
pass over memory; that is why these fusions come last in ``-O2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.compiler import ops  # noqa: F401  (declares the fused operators)
from npuc.ir.graph import Graph

from .base import Pass, register
from .rewrite import Rule, apply_rules

PRODUCERS = {"Conv": "FusedConv", "Gemm": "FusedGemm", "MatMul": "FusedMatMul"}
ACTIVATIONS = ["Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu",
               "Gelu", "npuc::Gelu"]


def _producer_patterns(act: str, extra: str = "", reshaped: bool = False) -> list[str]:
    pats = []
    for op, fused in PRODUCERS.items():
        for producer in (f"p:{op}(a, w, c?)", f"p:npuc::{fused}(a, w, c?)"):
            inner = f"r:Reshape({producer}, s)" if reshaped else producer
            pats.append(f"{act}({inner}{extra})")
    return pats


class ConvBias(Rule):
    """An Add of a per-channel constant after a Conv is the Conv's bias."""

    pattern = "Add(conv:Conv(x, w, b?), c)"

    def check(self, m):
        c, w = m.const("c"), m.const("w")
        if c is None or w is None:
            return "the added value or the weight is not a constant"
        channels = w.shape[0]
        rank = w.ndim
        if c.size != channels or c.ndim > rank or (c.ndim >= rank - 1 and c.shape[-(rank - 1):]
                                                    != (channels,) + (1,) * (rank - 2)):
            return "the added constant is not one value per output channel"
        if m.b is not None and m.const("b") is None:
            return "the Conv's bias is not a constant"

    def rewrite(self, m, b):
        bias = m.const("c").reshape(-1)
        if m.b is not None:
            bias = bias + m.const("b")
        return b.op("Conv", m.x, m.w, b.const(bias.astype(m.const("w").dtype)),
                    name=m.conv.name, out_type=m.root.outputs[0].type, **m.conv.attrs)


class MatMulBias(Rule):
    """An Add of a constant on the last axis after a MatMul is a FusedMatMul bias."""

    pattern = "Add(mm:MatMul(a, w), c)"

    def check(self, m):
        c = m.const("c")
        if c is None:
            return "the added value is not a constant"
        out = m.root.outputs[0].type
        if c.ndim == 0 or c.size != c.shape[-1] or out is None or out.shape is None or \
                c.shape[-1] != out.shape[-1]:
            return "the added constant is not one value per output column"

    def rewrite(self, m, b):
        bias = m.c if m.const("c").ndim == 1 else b.const(m.const("c").reshape(-1))
        return b.op("FusedMatMul", m.a, m.w, bias, domain="npuc", name=m.mm.name,
                    out_type=m.root.outputs[0].type)


class FuseActivation(Rule):
    """An activation after a Conv, Gemm or MatMul becomes its fused epilogue."""

    pattern = tuple(p for act in ACTIVATIONS for p in _producer_patterns(act)) + tuple(
        _producer_patterns("Clip", ", lo?, hi?"))

    def check(self, m):
        if m.p.domain == "npuc" and m.p.attrs.get("activation"):
            return f"{m.p.describe()} already has an activation"
        if m.root.op_type == "Clip":
            return _clip_bounds(m)[1]

    def rewrite(self, m, b):
        return self.fused(m, b, m.root.outputs[0].type)

    @staticmethod
    def fused(m, b, out_type):
        """The matched producer as its npuc Fused operator with the root's activation."""
        act, params = _activation(m)
        fused = PRODUCERS.get(m.p.op_type, m.p.op_type)
        attrs = {k: v for k, v in m.p.attrs.items() if k not in ("activation",
                                                                "activation_params")}
        attrs["activation"] = act
        if params:
            attrs["activation_params"] = [float(x) for x in params]
        return b.op(fused, m.a, m.w, m.c, domain="npuc", name=m.p.name, out_type=out_type,
                    **attrs)


class FuseActivationThroughReshape(FuseActivation):
    """An activation after a Reshape of a Conv, Gemm or MatMul becomes the producer's
    epilogue, the Reshape after it (an elementwise function commutes with a Reshape).
    GPT-2's Conv1D exports as ``Reshape(Gemm(Reshape(x)))`` before its GELU."""

    pattern = tuple(p for act in ACTIVATIONS
                    for p in _producer_patterns(act, "", reshaped=True)) + tuple(
        _producer_patterns("Clip", ", lo?, hi?", reshaped=True))

    def rewrite(self, m, b):
        y = self.fused(m, b, m.p.outputs[0].type)
        return b.op("Reshape", y, m.s, name=m.r.name, out_type=m.root.outputs[0].type,
                    **m.r.attrs)


def _clip_bounds(m):
    root = m.root
    if "min" in root.attrs or "max" in root.attrs:  # opset < 11 keeps them as attributes
        return (root.attrs.get("min", -np.inf), root.attrs.get("max", np.inf)), None
    bounds = []
    for name, default in (("lo", -np.inf), ("hi", np.inf)):
        v = m[name]
        if v is None:
            bounds.append(default)
        elif v.const is None:
            return None, "the Clip bounds are not constants"
        else:
            bounds.append(float(np.asarray(v.const).reshape(-1)[0]))
    return tuple(bounds), None


def _activation(m):
    root = m.root
    op = root.op_type
    if op == "Clip":
        return "Clip", list(_clip_bounds(m)[0])
    if op == "Gelu":
        return ("GeluTanh" if root.attrs.get("approximate", "none") == "tanh" else "Gelu"), []
    if op == "LeakyRelu":
        return op, [root.attrs.get("alpha", 0.01)]
    if op == "Elu":
        return op, [root.attrs.get("alpha", 1.0)]
    if op == "HardSigmoid":
        return op, [root.attrs.get("alpha", 0.2), root.attrs.get("beta", 0.5)]
    return op, []


@register
@dataclass
class FuseEpilogue(Pass):
    """Fuse bias adds and activations into Conv, Gemm and MatMul (npuc Fused ops)."""

    name = "fuse-epilogue"

    def run(self, graph: Graph) -> bool:
        count = apply_rules(graph, [ConvBias(), MatMulBias(), FuseActivation(),
                                    FuseActivationThroughReshape()], self.name)
        if count:
            graph.opset.setdefault("npuc", 1)
        return count > 0

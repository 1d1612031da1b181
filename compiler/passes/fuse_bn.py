"""BatchNormalization folded into the Conv or Gemm before it.

BatchNorm computes ``y = (x - mean) * f + bias`` with ``f = scale / sqrt(var + eps)``.
After ``x = conv(in, W) + b`` that is one Conv::

    W' = W * f        (f along the output channels, W's axis 0)
    b' = (b - mean) * f + bias

After ``x = alpha * A @ B + beta * C`` it is one Gemm, f along the output columns::

    B' = B * f        (B's axis 0 with transB, else axis 1)
    C' = (beta * C - mean) * f + bias,   beta' = 1

The new weights are new constants, so a weight shared with another node stays intact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.ir.schema import attr_or_default

from .base import RulePass, register
from .rewrite import Rule

BN = "BatchNormalization(x, scale, bias, mean, var)"


def _bn_check(m, weight_names):
    for name in ("scale", "bias", "mean", "var", *weight_names):
        if m[name] is not None and m.const(name) is None:
            return f"{name} is not a constant"
    if attr_or_default(m.root, "training_mode"):
        return "the BatchNormalization runs in training mode"
    if any(v is not None and v.uses for v in m.root.outputs[1:]):
        return "the running statistics are read"
    return None


def _factor(m):
    eps = attr_or_default(m.root, "epsilon")
    eps = 1e-5 if eps is None else eps
    var = m.const("var").astype(np.float64)
    f = m.const("scale").astype(np.float64) / np.sqrt(var + eps)
    return f, m.const("mean").astype(np.float64), m.const("bias").astype(np.float64)


def _scaled(w: np.ndarray, f: np.ndarray) -> np.ndarray:
    """``w * f`` computed in float64 and rounded once to ``w``'s type, element by element
    (numpy's buffered loop: no float64 copy of the whole weight)."""
    return np.multiply(w, f, dtype=np.float64, out=np.empty(w.shape, w.dtype),
                       casting="same_kind")


class FoldBatchNormIntoConv(Rule):
    """BatchNormalization after a Conv is folded into the Conv's weights and bias."""

    pattern = "BatchNormalization(conv:Conv(x, w, b?), scale, bias, mean, var)"

    def check(self, m):
        reason = _bn_check(m, ("w", "b"))
        if reason is None and m.const("w").shape[0] != m.const("scale").shape[0]:
            return "the BatchNormalization does not act on the Conv's output channels"
        return reason

    def rewrite(self, m, b):
        f, mean, bias = _factor(m)
        w = m.const("w")
        old_b = m.const("b") if m.b is not None else np.zeros(w.shape[0])
        shape = (-1,) + (1,) * (w.ndim - 1)
        new_w = b.const(_scaled(w, f.reshape(shape)), f"{m.w.name}_bn")
        new_b = b.const(((old_b - mean) * f + bias).astype(w.dtype), f"{m.conv.name}_bias")
        return b.op("Conv", m.x, new_w, new_b, name=m.conv.name,
                    out_type=m.root.outputs[0].type, **m.conv.attrs)


class FoldBatchNormIntoGemm(Rule):
    """BatchNormalization after a Gemm is folded into the Gemm's weights and bias."""

    pattern = "BatchNormalization(gemm:Gemm(a, w, c?), scale, bias, mean, var)"

    def check(self, m):
        reason = _bn_check(m, ("w", "c"))
        if reason is None and m.const("w").ndim != 2:
            return "the Gemm's weight is not a matrix"
        return reason

    def rewrite(self, m, b):
        f, mean, bias = _factor(m)
        w = m.const("w")
        trans_b = m.gemm.attrs.get("transB", 0)
        scaled = _scaled(w, f[:, None] if trans_b else f[None, :])
        beta = m.gemm.attrs.get("beta", 1.0)
        c = m.const("c").astype(np.float64) if m.c is not None else 0.0
        new_c = (beta * c - mean) * f + bias
        attrs = dict(m.gemm.attrs, beta=1.0)
        return b.op("Gemm", m.a, b.const(scaled, f"{m.w.name}_bn"),
                    b.const(np.asarray(new_c, w.dtype), f"{m.gemm.name}_bias"),
                    name=m.gemm.name, out_type=m.root.outputs[0].type, **attrs)


@register
@dataclass
class FuseConvBatchNorm(RulePass):
    """Fold BatchNormalization into the Conv or Gemm that feeds it."""

    name = "fuse-conv-bn"
    rules = (FoldBatchNormIntoConv, FoldBatchNormIntoGemm)

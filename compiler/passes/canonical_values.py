"""Canonicalization rules over values: what a node computes when it computes nothing.

- Identity, inference-mode Dropout and a Concat of one input (TorchScript writes one for
  each past key it returns) disappear; Cast to the same type disappears, and a
  Cast of a lossless Cast becomes one Cast.
- x+0, x-0, x*1, x/1 disappear where they do not broadcast.
- Where with a constant condition, and the guards ``Where(IsNaN(x), _, x)`` exporters
  emit around values that cannot be NaN (integers, shapes), become their branch.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from npuc.ir.types import TensorType

from .rewrite import Rule


def _type(v):
    return v.type if v is not None and isinstance(v.type, TensorType) else None


def _same_shape(a, b) -> bool:
    """True when two values certainly have the same shape."""
    ta, tb = _type(a), _type(b)
    if ta is None or tb is None or ta.shape is None or tb.shape is None:
        return False
    return ta.shape == tb.shape and all(d is not None and not (isinstance(d, str) and
                                                               d.startswith("unk__"))
                                        for d in ta.shape)


class ForwardInput(Rule):
    """A node that, when the match's check holds, computes its input ``x``: its output
    becomes ``x`` (quietly, as a clean-up). Each subclass gives the pattern and the check."""

    quiet = True

    def rewrite(self, m, b):
        return m.x


class RemoveIdentity(ForwardInput):
    """Identity returns its input."""

    pattern = "Identity(x)"


class RemoveSingleConcat(ForwardInput):
    """A Concat of one input returns its input."""

    pattern = "Concat(x)"


class RemoveDropout(ForwardInput):
    """Dropout at inference returns its input."""

    pattern = "Dropout(x, ratio?, training?)"

    def check(self, m):
        if m.training is not None and (m.const("training") is None or m.const("training").any()):
            return "it may run in training mode"
        if len(m.root.outputs) > 1 and m.root.outputs[1] is not None and m.root.outputs[1].uses:
            return "its mask is read"

    def rewrite(self, m, b):
        return [m.x, None]


class RemoveCast(ForwardInput):
    """A Cast to the type a value already has does nothing."""

    pattern = "Cast(x)"

    def check(self, m):
        t = _type(m.x)
        if t is None or t.dtype.numpy != _cast_to(m.root):
            return "it changes the type"


def _cast_to(node):

    return np.dtype(helper.tensor_dtype_to_np_dtype(node.attrs["to"]))


def _lossless(src: np.dtype, mid: np.dtype) -> bool:
    """Every value of ``src`` survives a trip through ``mid``."""
    if src == mid or src.kind == "b":
        return True
    if src.kind in "iu" and mid.kind in "iu":
        return np.can_cast(src, mid, "safe")
    if src.kind in "iu" and mid.kind == "f":
        return np.finfo(mid).nmant + 1 >= src.itemsize * 8 - (src.kind == "i")
    if src.kind == "f" and mid.kind == "f":
        return np.finfo(mid).nmant >= np.finfo(src).nmant and \
            np.finfo(mid).maxexp >= np.finfo(src).maxexp
    return False


class CastChain(Rule):
    """A Cast of a lossless Cast is one Cast."""

    pattern = "Cast(inner:~Cast(x))"
    quiet = True

    def check(self, m):
        t = _type(m.x)
        if t is None or t.dtype.kind in ("string",) or \
                not _lossless(t.dtype.numpy, _cast_to(m.inner)):
            return "the first Cast may lose information"

    def rewrite(self, m, b):
        return b.op("Cast", m.x, to=m.root.attrs["to"], out_type=m.root.outputs[0].type)


class NeutralArithmetic(ForwardInput):
    """x+0, x-0, x*1 and x/1 are x where they do not broadcast."""

    pattern = ("Add(x, 0)", "Sub(x, 0)", "Mul(x, 1)", "Div(x, 1)")

    def check(self, m):
        if not _same_shape(m.x, m.root.outputs[0]) or _type(m.x).dtype != \
                _type(m.root.outputs[0]).dtype:
            return "it broadcasts or changes the type"


class ConstantWhere(Rule):
    """Where with a constant condition is one of its branches."""

    pattern = "Where(cond, x, y)"
    quiet = True

    def check(self, m):
        c = m.const("cond")
        if m.x is m.y:
            pick = m.x
        elif c is None or not (c.all() or not c.any()):
            return "the condition is not a uniform constant"
        else:
            pick = m.x if c.all() else m.y
        if not _same_shape(pick, m.root.outputs[0]):
            return "it broadcasts"

    def rewrite(self, m, b):
        c = m.const("cond")
        return m.x if m.x is m.y or c.all() else m.y


# Producers whose results are never NaN.
NEVER_NAN = {"Shape", "Size", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
             "Not", "And", "Or", "IsNaN", "IsInf", "ArgMax", "ArgMin", "NonZero"}


class NanGuard(ForwardInput):
    """Where(IsNaN(x), _, x) is x when x cannot be NaN."""

    pattern = "Where(IsNaN(x), _, x)"

    def check(self, m):
        t = _type(m.x)
        integral = t is not None and not t.dtype.is_float
        if not integral and (m.x.producer is None or m.x.producer.op_type not in NEVER_NAN):
            return "x may be NaN"
        if not _same_shape(m.x, m.root.outputs[0]):
            return "it broadcasts"



"""Canonicalization: the small local simplifications every later pass relies on.

- Identity and inference-mode Dropout disappear; Cast to the same type disappears, and a
  Cast of a lossless Cast becomes one Cast; Reshape of Reshape becomes one Reshape;
  Reshape or Expand to the shape a value already has disappears.
- Transpose of Transpose becomes one (or none); a Transpose that keeps the order goes.
- x+0, x-0, x*1, x/1 disappear where they do not broadcast.
- Where with a constant condition, and the guards ``Where(IsNaN(x), _, x)`` exporters
  emit around values that cannot be NaN (integers, shapes), become their branch.
- Shape→Gather reads of static dimensions become constants; a Reshape whose target is
  computed by a Shape→Gather→Concat chain gets a constant target when the output type
  says it (0 copies a symbolic dimension, -1 infers the one left), so the chain dies.
- Nodes with small all-constant inputs are folded, as MLIR's canonicalizer folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.ir.graph import Graph
from npuc.ir.schema import attr_or_default
from npuc.ir.types import TensorType

from .base import Pass, register
from .fold_constants import compute, foldable
from .rewrite import Rule, apply_rules

SMALL = 64


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


class RemoveIdentity(Rule):
    """Identity returns its input."""

    pattern = "Identity(x)"
    quiet = True

    def rewrite(self, m, b):
        return m.x


class RemoveDropout(Rule):
    """Dropout at inference returns its input."""

    pattern = "Dropout(x, ratio?, training?)"
    quiet = True

    def check(self, m):
        if m.training is not None and (m.const("training") is None or m.const("training").any()):
            return "it may run in training mode"
        if len(m.root.outputs) > 1 and m.root.outputs[1] is not None and m.root.outputs[1].uses:
            return "its mask is read"

    def rewrite(self, m, b):
        return [m.x, None]


class RemoveCast(Rule):
    """A Cast to the type a value already has does nothing."""

    pattern = "Cast(x)"
    quiet = True

    def check(self, m):
        t = _type(m.x)
        if t is None or t.dtype.numpy != _cast_to(m.root):
            return "it changes the type"

    def rewrite(self, m, b):
        return m.x


def _cast_to(node):
    from onnx import helper

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


class ReshapeChain(Rule):
    """A Reshape of a Reshape is one Reshape."""

    pattern = "Reshape(~Reshape(x, _), shape)"
    quiet = True

    def check(self, m):
        s = m.const("shape")
        if s is None or (0 in s and not attr_or_default(m.root, "allowzero")):
            return "the second target is not a constant free of 0"

    def rewrite(self, m, b):
        return b.op("Reshape", m.x, m.shape, out_type=m.root.outputs[0].type,
                    **m.root.attrs)


class RemoveReshape(Rule):
    """A Reshape or Expand to the shape a value has does nothing."""

    pattern = ("Reshape(x, _)", "Expand(x, _)", "Squeeze(x, axes?)", "Unsqueeze(x, axes?)")
    quiet = True

    def check(self, m):
        if not _same_shape(m.x, m.root.outputs[0]):
            return "the shape changes"

    def rewrite(self, m, b):
        return m.x


def _perm(node, rank):
    return list(node.attrs.get("perm", range(rank - 1, -1, -1)))


class TransposePair(Rule):
    """Transpose of Transpose is one Transpose, or none when they cancel."""

    pattern = "Transpose(inner:~Transpose(x))"
    quiet = True

    def check(self, m):
        t = _type(m.x)
        if (t is None or t.shape is None) and not ("perm" in m.inner.attrs and
                                                   "perm" in m.root.attrs):
            return "the rank is unknown"

    def rewrite(self, m, b):
        rank = len(m.inner.attrs["perm"]) if "perm" in m.inner.attrs else len(m.x.type.shape)
        p1, p2 = _perm(m.inner, rank), _perm(m.root, rank)
        perm = [p1[i] for i in p2]
        if perm == list(range(rank)):
            return m.x
        return b.op("Transpose", m.x, perm=perm, out_type=m.root.outputs[0].type)


class RemoveTranspose(Rule):
    """A Transpose that keeps the order does nothing."""

    pattern = "Transpose(x)"
    quiet = True

    def check(self, m):
        perm = m.root.attrs.get("perm")
        if perm is None or list(perm) != list(range(len(perm))):
            return "it reorders axes"

    def rewrite(self, m, b):
        return m.x


class NeutralArithmetic(Rule):
    """x+0, x-0, x*1 and x/1 are x where they do not broadcast."""

    pattern = ("Add(x, 0)", "Sub(x, 0)", "Mul(x, 1)", "Div(x, 1)")
    quiet = True

    def check(self, m):
        if not _same_shape(m.x, m.root.outputs[0]) or _type(m.x).dtype != \
                _type(m.root.outputs[0]).dtype:
            return "it broadcasts or changes the type"

    def rewrite(self, m, b):
        return m.x


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


class NanGuard(Rule):
    """Where(IsNaN(x), _, x) is x when x cannot be NaN."""

    pattern = "Where(IsNaN(x), _, x)"
    quiet = True

    def check(self, m):
        t = _type(m.x)
        integral = t is not None and not t.dtype.is_float
        if not integral and (m.x.producer is None or m.x.producer.op_type not in NEVER_NAN):
            return "x may be NaN"
        if not _same_shape(m.x, m.root.outputs[0]):
            return "it broadcasts"

    def rewrite(self, m, b):
        return m.x


class StaticShape(Rule):
    """Shape of a value whose shape is static is a constant."""

    pattern = "Shape(x)"
    quiet = True

    def check(self, m):
        t = _type(m.x)
        if t is None or not t.is_static:
            return "the shape is not static"

    def rewrite(self, m, b):
        return b.const(np.asarray(_shape_slice(m.root, list(m.x.type.shape)), np.int64))


class StaticDims(Rule):
    """Shape→Gather of static dimensions is a constant."""

    pattern = "Gather(shape:Shape(x), idx)"
    quiet = True

    def check(self, m):
        t, idx = _type(m.x), m.const("idx")
        if t is None or t.shape is None or idx is None:
            return "the shape or the index is unknown"
        dims = _shape_slice(m.shape, list(t.shape))
        picked = [dims[i] for i in np.asarray(idx).reshape(-1)]
        if not all(isinstance(d, int) for d in picked):
            return "a dimension it reads is not static"

    def rewrite(self, m, b):
        dims = _shape_slice(m.shape, list(_type(m.x).shape))
        idx = np.asarray(m.const("idx"))
        return b.const(np.asarray([dims[i] for i in idx.reshape(-1)], np.int64).reshape(idx.shape))


def _shape_slice(node, dims):
    return dims[slice(node.attrs.get("start", 0), node.attrs.get("end", None))]


class ReshapeTargetFromType(Rule):
    """A Reshape whose target is computed gets a constant one when the types tell it."""

    pattern = "Reshape(x, shape)"
    quiet = True

    def check(self, m):
        if m.shape.const is not None:
            return "the target is already a constant"
        if attr_or_default(m.root, "allowzero"):
            return "allowzero is set"
        if _target(m.x, m.root.outputs[0]) is None:
            return "the output shape is not known well enough"

    def rewrite(self, m, b):
        target = b.const(np.asarray(_target(m.x, m.root.outputs[0]), np.int64))
        return b.op("Reshape", m.x, target, out_type=m.root.outputs[0].type)


def _target(x, y):
    """A constant Reshape target giving ``y``'s shape from ``x``'s, or None."""
    tx, ty = _type(x), _type(y)
    if tx is None or ty is None or tx.shape is None or ty.shape is None:
        return None
    target, unknown = [], 0
    for i, d in enumerate(ty.shape):
        if isinstance(d, int) and d != 0:
            target.append(d)
        elif isinstance(d, str) and not d.startswith("unk__") and i < len(tx.shape) \
                and tx.shape[i] == d:
            target.append(0)
        else:
            target.append(-1)
            unknown += 1
    return target if unknown <= 1 else None


class FoldSmall(Rule):
    """A node with small constant inputs and a small result is folded."""

    roots = None
    quiet = True

    def match(self, node):
        if foldable(node) and len(node.outputs) == 1 and node.op_type != "Constant" and \
                all(v is None or v.const.size <= SMALL for v in node.inputs):
            from .pattern import Match

            yield Match(node, covered=[(node, True)])

    def rewrite(self, m, b):
        try:
            result = np.asarray(compute(m.root)[0])
        except Exception:  # left for run time, where the executor says why
            return None
        if result.size > SMALL:
            return None
        return b.const(result)


RULES = [RemoveIdentity, RemoveDropout, RemoveCast, CastChain, ReshapeChain, RemoveReshape,
         TransposePair, RemoveTranspose, NeutralArithmetic, ConstantWhere, NanGuard,
         StaticShape, StaticDims, ReshapeTargetFromType, FoldSmall]


@register
@dataclass
class Canonicalize(Pass):
    """Simplify locally: identities, chains of casts, reshapes and transposes, guards."""

    name = "canonicalize"

    def run(self, graph: Graph) -> bool:
        return apply_rules(graph, [r() for r in RULES], self.name) > 0

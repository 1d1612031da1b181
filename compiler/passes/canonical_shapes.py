"""Canonicalization rules over shapes: reshapes, transposes and shape arithmetic.

- Reshape of Reshape becomes one Reshape; Reshape or Expand to the shape a value already
  has disappears.
- Transpose of Transpose becomes one (or none); a Transpose that keeps the order goes.
- A Transpose between a Reshape that merges the leading axes and one that splits them
  again (torch's SDPA export transposes the keys as a 3-D tensor this way) becomes the
  Reshape and then the Transpose of the trailing axes, the form attention patterns read.
- Shape→Gather reads of static dimensions become constants; a Reshape whose target is
  computed by a Shape→Gather→Concat chain gets a constant target when the output type
  says it (0 copies a symbolic dimension, -1 infers the one left), so the chain dies.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.schema import attr_or_default

from .canonical_values import ForwardInput, _same_shape, _type
from .rewrite import Rule


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


class RemoveReshape(ForwardInput):
    """A Reshape or Expand to the shape a value has does nothing."""

    pattern = ("Reshape(x, _)", "Expand(x, _)", "Squeeze(x, axes?)", "Unsqueeze(x, axes?)")

    def check(self, m):
        if not _same_shape(m.x, m.root.outputs[0]):
            return "the shape changes"


class RemoveFullSlice(ForwardInput):
    """A Slice with positive steps whose output has its input's shape takes all of it."""

    pattern = "Slice(x, starts, ends, axes?, steps?)"

    def check(self, m):
        if not _same_shape(m.x, m.root.outputs[0]):
            return "the shape changes"
        if m.steps is not None and (m.const("steps") is None or (m.const("steps") <= 0).any()):
            return "its steps are not known to be positive"


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


class TransposeOfMerged(Rule):
    """Reshape(Transpose(Reshape(x, [P, r...]), perm), [Q..., r'...]), where the first
    Reshape merges x's leading axes into P, perm keeps axis 0 and Q splits P again, is
    Transpose(Reshape(x, [Q..., r...]), perm shifted past Q)."""

    pattern = "Reshape(t:~Transpose(inner:~Reshape(x, _)), _)"
    quiet = True

    def check(self, m):
        shapes = [getattr(_type(v), "shape", None) for v in (m.x, m.inner.outputs[0],
                                                             m.root.outputs[0])]
        if any(s is None or not all(isinstance(d, int) for d in s) for s in shapes):
            return "the shapes are not static"
        x, y, z = (list(s) for s in shapes)
        perm = _perm(m.t, len(y))
        k, q = len(x) - len(y) + 1, len(z) - len(y) + 1
        if perm[0] != 0 or k < 1 or q < 1 or x[k:] != y[1:] or int(np.prod(x[:k])) != y[0]:
            return "the first Reshape does not merge the leading axes only"
        if z[q:] != [y[p] for p in perm[1:]] or int(np.prod(z[:q])) != y[0]:
            return "the last Reshape does not split the merged axis only"

    def rewrite(self, m, b):
        y, z = list(m.inner.outputs[0].type.shape), list(m.root.outputs[0].type.shape)
        q = len(z) - len(y) + 1
        shape = z[:q] + y[1:]
        perm = list(range(q)) + [q - 1 + p for p in _perm(m.t, len(y))[1:]]
        merged = b.op("Reshape", m.x, b.const(np.asarray(shape, np.int64)),
                      out_type=m.x.type.with_shape(tuple(shape)))
        return b.op("Transpose", merged, perm=perm, out_type=m.root.outputs[0].type)


class RemoveTranspose(ForwardInput):
    """A Transpose that keeps the order does nothing."""

    pattern = "Transpose(x)"

    def check(self, m):
        perm = m.root.attrs.get("perm")
        if perm is None or list(perm) != list(range(len(perm))):
            return "it reorders axes"


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

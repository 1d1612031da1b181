"""Canonicalization: the small local simplifications every later pass relies on.

- Identity, inference-mode Dropout and one-input Concats disappear; Cast to the same
  type disappears, and a Cast of a lossless Cast becomes one Cast; Reshape of Reshape becomes one Reshape;
  Reshape or Expand to the shape a value already has disappears; so does a Slice with
  positive steps that keeps the whole tensor (exporters write them for strided views).
- Transpose of Transpose becomes one (or none); a Transpose that keeps the order goes;
  one between a Reshape merging the leading axes and one splitting them again moves
  after the Reshapes.
- x+0, x-0, x*1, x/1 disappear where they do not broadcast.
- Where with a constant condition, and the guards ``Where(IsNaN(x), _, x)`` exporters
  emit around values that cannot be NaN (integers, shapes), become their branch.
- Shape→Gather reads of static dimensions become constants; a Reshape whose target is
  computed by a Shape→Gather→Concat chain gets a constant target when the output type
  says it (0 copies a symbolic dimension, -1 infers the one left), so the chain dies.
- Nodes with small all-constant inputs are folded, as MLIR's canonicalizer folds.

The rules live by family: values in :mod:`.canonical_values`, shapes in
:mod:`.canonical_shapes`, the small fold with the constant folder
(:mod:`.fold_constants`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import RulePass, register
from .canonical_shapes import (
    RemoveFullSlice,
    RemoveReshape,
    RemoveTranspose,
    ReshapeChain,
    ReshapeTargetFromType,
    StaticDims,
    StaticShape,
    TransposeOfMerged,
    TransposePair,
)
from .canonical_values import (
    CastChain,
    ConstantWhere,
    NanGuard,
    NeutralArithmetic,
    RemoveCast,
    RemoveDropout,
    RemoveIdentity,
    RemoveSingleConcat,
)
from .fold_constants import FoldSmall

RULES = [RemoveIdentity, RemoveSingleConcat, RemoveDropout, RemoveCast, CastChain,
         ReshapeChain, RemoveReshape, RemoveFullSlice, TransposePair, TransposeOfMerged,
         RemoveTranspose, NeutralArithmetic, ConstantWhere, NanGuard, StaticShape, StaticDims,
         ReshapeTargetFromType, FoldSmall]


@register
@dataclass
class Canonicalize(RulePass):
    """Simplify locally: identities, chains of casts, reshapes and transposes, guards."""

    name = "canonicalize"
    rules = tuple(RULES)

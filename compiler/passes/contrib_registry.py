"""The expansions of onnxruntime's contrib operators, by operator: what
``expand-contrib`` (:mod:`.contrib_expand`) applies, and the helpers they share.

``@expansion(op, check)`` registers ``build(node, builder)`` for ``com.microsoft::op``;
``check(node)`` returns the reason a node cannot be expanded, or None.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.types import TensorType

MS = "com.microsoft"
EXPAND: dict[str, tuple] = {}  # op -> (check(node) -> reason | None, build(node, b))


def expansion(op, check=None):
    """Register the decorated ``build(node, b)`` as the expansion of ``op``."""
    def register_fn(fn):
        EXPAND[op] = (check or (lambda node: None), fn)
        return fn
    return register_fn


def opset(node) -> int:
    return node.graph.opset_of("") or 17


def dtype_of(v):
    return v.type.dtype.numpy if isinstance(v.type, TensorType) else np.float32


def const(b, value, like):
    return b.const(np.asarray(value, dtype_of(like)))


def used(node, i) -> bool:
    v = node.outputs[i] if len(node.outputs) > i else None
    return v is not None and (bool(v.uses) or any(o is v for o in node.graph.outputs))


def rank(v):
    t = v.type
    return len(t.shape) if isinstance(t, TensorType) and t.shape is not None else None


def reduce_mean_last(b, x, ops: int):
    """ReduceMean over the last axis, keeping it (axes an attribute before opset 18)."""
    if ops >= 18:
        return b.op("ReduceMean", x, b.const(np.array([-1], np.int64)), keepdims=1)
    return b.op("ReduceMean", x, axes=[-1], keepdims=1)

"""Decompositions of npuc's operators back to standard ONNX nodes, and the builders they
share with the passes (an epilogue activation, GELU for any opset, repeated heads).

``DECOMPOSE[("npuc", op)](node, builder)`` gives the ONNX values that replace the node's
outputs, so that an optimized graph exports to a model onnxruntime runs.
"""

from __future__ import annotations

import math

import numpy as np

from npuc.ir.types import TensorType

DECOMPOSE = {}


def decomposition(op_type):
    """Register the decorated function as the decomposition of ``npuc::op_type``."""
    def register(fn):
        DECOMPOSE[("npuc", op_type)] = fn
        return fn

    return register


def emit_activation(b, y, name, params, opset):
    """The ONNX nodes of an epilogue activation applied to ``y``."""
    if not name:
        return y
    dt = y.type.dtype.numpy if isinstance(y.type, TensorType) else np.float32
    if name == "Clip":
        return b.op("Clip", y, b.const(np.asarray(params[0], dt)),
                    b.const(np.asarray(params[1], dt)), out_type=y.type)
    if name in ("Gelu", "GeluTanh"):
        return emit_gelu(b, y, "tanh" if name == "GeluTanh" else "none", opset)
    attrs = {}
    if name in ("LeakyRelu", "Elu"):
        attrs["alpha"] = float(params[0])
    elif name == "HardSigmoid":
        attrs = {"alpha": float(params[0]), "beta": float(params[1])}
    return b.op(name, y, out_type=y.type, **attrs)


def emit_gelu(b, x, approximate, opset):
    """GELU of ``x``: the ONNX Gelu from opset 20, its Erf or Tanh expansion before."""
    if opset >= 20:
        return b.op("Gelu", x, approximate=approximate, out_type=x.type)
    dt = x.type.dtype.numpy if isinstance(x.type, TensorType) else np.float32
    c = lambda value: b.const(np.asarray(value, dt))  # noqa: E731
    t = x.type
    if approximate == "tanh":
        cube = b.op("Mul", c(0.044715), b.op("Pow", x, c(3.0), out_type=t), out_type=t)
        inner = b.op("Mul", c(math.sqrt(2 / math.pi)), b.op("Add", x, cube, out_type=t),
                     out_type=t)
        one_plus = b.op("Add", c(1.0), b.op("Tanh", inner, out_type=t), out_type=t)
    else:
        erf = b.op("Erf", b.op("Div", x, c(math.sqrt(2)), out_type=t), out_type=t)
        one_plus = b.op("Add", erf, c(1.0), out_type=t)
    return b.op("Mul", b.op("Mul", x, c(0.5), out_type=t), one_plus, out_type=t)


def graph_opset(node) -> int:
    """The ONNX opset of the node's graph (17 when it imports none)."""
    return node.graph.opset_of("") or 17


def emit_repeat_heads(b, x, n):
    """HF's ``repeat_kv`` on axis -3: Unsqueeze, Expand, Reshape."""
    shape = list(x.type.shape)
    rank = len(shape)
    axis = rank - 2
    y = b.op("Unsqueeze", x, b.const(np.asarray([axis], np.int64)))
    y = b.op("Expand", y, b.const(np.asarray(shape[:axis] + [n] + shape[axis:], np.int64)))
    out = shape[:axis - 1] + [shape[axis - 1] * n] + shape[axis:]
    return b.op("Reshape", y, b.const(np.asarray(out, np.int64)))


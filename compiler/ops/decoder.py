"""The decoder operators the passes create (domain ``npuc``): schema, kernel, decomposition.

- ``RMSNorm(X, Scale) {axis, epsilon}``: ``X * 1/sqrt(mean(X², axes >= axis) + epsilon) *
  Scale``, LlamaRMSNorm.
- ``Rotary(X, Cos, Sin)``: rotary position embedding in the "rotate half" form,
  ``X * Cos + concat(-X[..., d/2:], X[..., :d/2]) * Sin``; Cos and Sin broadcast to X.
- ``GatedMLP(X, Wg, Wu) {activation}``: ``act(X @ Wg) * (X @ Wu)``, the gate and up
  projections of a gated MLP with their product (``Silu``, ``Gelu`` or ``GeluTanh``).

Each kernel computes what the nodes it replaces computed, in the same order of float32
operations, so a fused graph gives the numbers of the unfused one. Each decomposition
rebuilds standard ONNX nodes (``RMSNormalization`` from opset 23) for export.
"""

from __future__ import annotations

import numpy as np

from npuc.compiler.executor.kernels import get_kernel, kernel
from npuc.ir.schema import FLOAT, INT, STRING, register_op
from npuc.ir.types import TensorType

from .emit import decomposition, emit_gelu
from .fused import onnx_ctx
from .shapes import input_type as _t
from .shapes import same_shape

GATE_ACTIVATIONS = ("Silu", "Gelu", "GeluTanh")


def _gated_shape(node):
    x, w = _t(node, 0), _t(node, 1)
    if x is None or w is None or x.shape is None or w.shape is None:
        return [None]
    return [TensorType(x.dtype, (*x.shape[:-1], w.shape[-1]))]


register_op("RMSNorm", inputs=("X", "Scale"),
            attrs={"axis": (INT, -1), "epsilon": (FLOAT, 1e-5)}, infer=same_shape,
            doc="Root-mean-square normalization over the trailing axes, then a scale.")
register_op("Rotary", inputs=("X", "Cos", "Sin"), infer=same_shape,
            doc="Rotary position embedding, rotate-half form.")
register_op("GatedMLP", inputs=("X", "Wg", "Wu"), attrs={"activation": (STRING, "Silu")},
            infer=_gated_shape, doc="act(X @ Wg) * (X @ Wu), the gated MLP's first half.")


# -- kernels ---------------------------------------------------------------------------
@kernel("RMSNorm", domain="npuc")
def rms_norm(inputs, attrs, ctx):
    x, scale = inputs[0], inputs[1]
    axis = attrs.get("axis", -1) % x.ndim
    dt = x.dtype.type
    mean = np.mean(np.power(x, dt(2)), axis=tuple(range(axis, x.ndim)), keepdims=True,
                   dtype=x.dtype)
    inv = np.reciprocal(np.sqrt(mean + dt(attrs.get("epsilon", 1e-5))))
    return [(scale * (x * inv)).astype(x.dtype, copy=False)]


def rotate_half(x: np.ndarray) -> np.ndarray:
    """``concat(-x2, x1)`` of the two halves of the last axis."""
    half = x.shape[-1] // 2
    return np.concatenate((-x[..., half:], x[..., :half]), axis=-1)


@kernel("Rotary", domain="npuc")
def rotary(inputs, attrs, ctx):
    x, cos, sin = inputs
    return [(x * cos + rotate_half(x) * sin).astype(x.dtype, copy=False)]


def gate(g: np.ndarray, activation: str, ctx) -> np.ndarray:
    """The gate's activation, with the ONNX kernels where the graph used them."""
    if activation == "Silu":
        return g * get_kernel("Sigmoid")([g], {}, ctx)[0]
    approx = "tanh" if activation == "GeluTanh" else "none"
    return get_kernel("Gelu")([g], {"approximate": approx}, ctx)[0]


@kernel("GatedMLP", domain="npuc")
def gated_mlp(inputs, attrs, ctx):
    ctx = onnx_ctx(ctx)
    x, wg, wu = inputs
    mm = get_kernel("MatMul")
    g = mm([x, wg], {}, ctx)[0]
    u = mm([x, wu], {}, ctx)[0]
    return [gate(g, attrs.get("activation", "Silu"), ctx) * u]


# -- decompositions back to ONNX -------------------------------------------------------
def _dt(v):
    return v.type.dtype.numpy if isinstance(v.type, TensorType) else np.float32


@decomposition("RMSNorm")
def _rms_norm(node, b):
    x, scale = node.inputs
    t = node.outputs[0].type
    axis, eps = node.attrs.get("axis", -1), node.attrs.get("epsilon", 1e-5)
    opset = node.graph.opset_of("") or 17
    if opset >= 23:
        return [b.op("RMSNormalization", x, scale, axis=axis, epsilon=eps, out_type=t)]
    dt = _dt(x)
    rank = len(x.type.shape)
    axes = list(range(axis % rank, rank))
    sq = b.op("Pow", x, b.const(np.asarray(2.0, dt)), out_type=x.type)
    if opset >= 18:
        mean = b.op("ReduceMean", sq, b.const(np.asarray(axes, np.int64)), keepdims=1)
    else:
        mean = b.op("ReduceMean", sq, axes=axes, keepdims=1)
    root = b.op("Sqrt", b.op("Add", mean, b.const(np.asarray(eps, dt))))
    y = b.op("Mul", x, b.op("Reciprocal", root), out_type=x.type)
    return [b.op("Mul", scale, y, out_type=t)]


@decomposition("Rotary")
def _rotary(node, b):
    x, cos, sin = node.inputs
    t = node.outputs[0].type
    d = x.type.shape[-1]
    i64 = lambda v: b.const(np.asarray(v, np.int64))  # noqa: E731
    axis = i64([-1])
    x1 = b.op("Slice", x, i64([0]), i64([d // 2]), axis)
    x2 = b.op("Slice", x, i64([d // 2]), i64([d]), axis)
    half = b.op("Concat", b.op("Neg", x2), x1, axis=-1, out_type=x.type)
    return [b.op("Add", b.op("Mul", x, cos, out_type=t), b.op("Mul", half, sin, out_type=t),
                 out_type=t)]


@decomposition("GatedMLP")
def _gated_mlp(node, b):
    x, wg, wu = node.inputs
    t = node.outputs[0].type
    g = b.op("MatMul", x, wg, out_type=t)
    u = b.op("MatMul", x, wu, out_type=t)
    act = node.attrs.get("activation", "Silu")
    if act == "Silu":
        a = b.op("Mul", g, b.op("Sigmoid", g, out_type=t), out_type=t)
    else:
        a = emit_gelu(b, g, "tanh" if act == "GeluTanh" else "none",
                      node.graph.opset_of("") or 17)
    return [b.op("Mul", a, u, out_type=t)]

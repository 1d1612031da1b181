"""onnxruntime's float contrib operators (domain ``com.microsoft``): fused convolution and
matrix product, the GELU family, bias additions and the layer normalizations.

Each follows onnxruntime's CPU kernel: FusedConv adds ``Z`` before its activation; the
GELUs compute ``x * Phi(x)`` exactly (Gelu, BiasGelu) or with the tanh approximation
(FastGelu); the skip layer normalizations normalize ``input + skip + bias`` over the
last axis and also return that sum. Composed from the ONNX kernels, so they compute what
their ONNX decompositions compute.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import get_kernel, kernel
from .epilogue import activate

MS = "com.microsoft"


def onnx_ctx(ctx, num_outputs: int = 1):
    """The context an ONNX kernel expects: the graph's ONNX opset, one output."""
    graph = getattr(ctx.node, "graph", None)
    opset = (graph.opset_of("") if graph is not None else None) or 21
    return dataclasses.replace(ctx, opset=max(opset, 17), num_outputs=num_outputs)


def run(op: str, inputs, attrs, ctx, num_outputs: int = 1):
    """Run the ONNX kernel of ``op``; its first output (all of them when asked for more)."""
    out = get_kernel(op)(list(inputs), attrs, onnx_ctx(ctx, num_outputs))
    return out[0] if num_outputs == 1 else out


def activation(y, name: str, params, ctx):
    """onnxruntime's FusedConv activations: Relu, Sigmoid, Tanh, LeakyRelu, Clip,
    HardSigmoid (with their parameters)."""
    return activate(y, name or "", params or [], onnx_ctx(ctx))


@kernel("FusedConv", domain=MS)
def fused_conv(inputs, attrs, ctx):
    conv_attrs = {k: v for k, v in attrs.items() if k not in ("activation", "activation_params")}
    y = run("Conv", [x for x in inputs[:3]], conv_attrs, ctx)
    if len(inputs) > 3 and inputs[3] is not None:
        y = y + inputs[3]
    return [activation(y, attrs.get("activation"), attrs.get("activation_params"), ctx)]


@kernel("NhwcConv", domain=MS)
def nhwc_conv(inputs, attrs, ctx):
    x = inputs[0]
    to_nchw = (0, x.ndim - 1, *range(1, x.ndim - 1))
    y = run("Conv", [np.transpose(x, to_nchw), *inputs[1:]], attrs, ctx)
    return [np.ascontiguousarray(np.transpose(y, (0, *range(2, y.ndim), 1)))]


def fused_matmul_perm(rank: int, trans: int, trans_batch: int) -> list[int]:
    """The permutation FusedMatMul applies to an operand of ``rank`` (>= 2):
    ``transBatch`` moves the first axis just before the last, ``trans`` swaps the last two."""
    perm = list(range(rank))
    if trans_batch and rank > 2:
        perm = perm[1:rank - 1] + [0, rank - 1]
    if trans:
        perm[-2], perm[-1] = perm[-1], perm[-2]
    return perm


def fused_matmul_operand(shape, trans: int, trans_batch: int):
    """The shape of a FusedMatMul operand after its transpositions."""
    return tuple(shape[p] for p in fused_matmul_perm(len(shape), trans, trans_batch))


@kernel("FusedMatMul", domain=MS)
def fused_matmul(inputs, attrs, ctx):
    a, b = inputs[0], inputs[1]
    if a.ndim >= 2:
        a = np.transpose(a, fused_matmul_perm(a.ndim, attrs.get("transA", 0),
                                              attrs.get("transBatchA", 0)))
    if b.ndim >= 2:
        b = np.transpose(b, fused_matmul_perm(b.ndim, attrs.get("transB", 0),
                                              attrs.get("transBatchB", 0)))
    y = run("MatMul", [np.ascontiguousarray(a), np.ascontiguousarray(b)], {}, ctx)
    alpha = attrs.get("alpha", 1.0)
    return [y if alpha == 1.0 else (y * np.asarray(alpha, y.dtype)).astype(y.dtype)]


def gelu(x, approximate: str = "none", ctx=None):
    """GELU with the ONNX kernel: exact (erf) or with the tanh approximation."""
    return run("Gelu", [x], {"approximate": approximate}, ctx)


@kernel("Gelu", domain=MS)
def ms_gelu(inputs, attrs, ctx):
    return [gelu(inputs[0], ctx=ctx)]


@kernel("BiasGelu", domain=MS)
def bias_gelu(inputs, attrs, ctx):
    return [gelu(inputs[0] + inputs[1], ctx=ctx)]


@kernel("FastGelu", domain=MS)
def fast_gelu(inputs, attrs, ctx):
    x = inputs[0] if len(inputs) < 2 or inputs[1] is None else inputs[0] + inputs[1]
    return [gelu(x, "tanh", ctx)]


@kernel("QuickGelu", domain=MS)
def quick_gelu(inputs, attrs, ctx):
    x = inputs[0]
    alpha = attrs.get("alpha", 1.702)
    x64 = x.astype(np.float64)
    return [(x64 / (1.0 + np.exp(-alpha * x64))).astype(x.dtype)]


@kernel("BiasAdd", domain=MS)
def bias_add(inputs, attrs, ctx):
    return [(inputs[0] + inputs[1] + inputs[2]).astype(inputs[0].dtype)]


@kernel("BiasSoftmax", domain=MS)
def bias_softmax(inputs, attrs, ctx):
    s = inputs[0] + inputs[1]
    return [run("Softmax", [s], {"axis": attrs.get("axis", 1)}, ctx)]


def _normalize(x, axis, eps, simplified):
    """``(y, mean, inv_std)`` of ``x`` over the axes from ``axis`` on, in float64."""
    axes = tuple(range(axis % x.ndim, x.ndim))
    x64 = x.astype(np.float64)
    mean = np.zeros_like(x64.sum(axis=axes, keepdims=True)) if simplified else \
        x64.mean(axis=axes, keepdims=True)
    d = x64 - mean
    inv = 1.0 / np.sqrt((d * d).mean(axis=axes, keepdims=True) + eps)
    return d * inv, mean, inv


def _layer_norm(x, gamma, beta, axis, eps, simplified, n_out, extra=()):
    y, mean, inv = _normalize(x, axis, eps, simplified)
    y = y * gamma
    if beta is not None:
        y = y + beta
    outs = [y.astype(x.dtype), mean.astype(np.float32), inv.astype(np.float32), *extra]
    return outs


@kernel("LayerNormalization", domain=MS)
def ms_layer_norm(inputs, attrs, ctx):
    x, gamma = inputs[0], inputs[1]
    beta = inputs[2] if len(inputs) > 2 else None
    outs = _layer_norm(x, gamma, beta, attrs.get("axis", -1), attrs.get("epsilon", 1e-5),
                       False, ctx.num_outputs)
    return outs[:ctx.num_outputs]


@kernel("SimplifiedLayerNormalization", domain=MS)
def simplified_layer_norm(inputs, attrs, ctx):
    x, gamma = inputs[0], inputs[1]
    y, _, inv, *_ = _layer_norm(x, gamma, None, attrs.get("axis", -1),
                                attrs.get("epsilon", 1e-5), True, ctx.num_outputs)
    return [y, inv][:ctx.num_outputs]


def _skip_sum(inputs, bias_index):
    s = inputs[0] + inputs[1]
    if len(inputs) > bias_index and inputs[bias_index] is not None:
        s = s + inputs[bias_index]
    return s.astype(inputs[0].dtype)


@kernel("SkipLayerNormalization", domain=MS)
def skip_layer_norm(inputs, attrs, ctx):
    s = _skip_sum(inputs, 4)
    beta = inputs[3] if len(inputs) > 3 else None
    outs = _layer_norm(s, inputs[2], beta, -1, attrs.get("epsilon", 1e-12), False,
                       ctx.num_outputs, (s,))
    return outs[:ctx.num_outputs]


@kernel("SkipSimplifiedLayerNormalization", domain=MS)
def skip_simplified_layer_norm(inputs, attrs, ctx):
    s = _skip_sum(inputs, 3)
    outs = _layer_norm(s, inputs[2], None, -1, attrs.get("epsilon", 1e-12), True,
                       ctx.num_outputs, (s,))
    return outs[:ctx.num_outputs]

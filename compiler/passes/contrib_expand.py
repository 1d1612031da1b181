"""onnxruntime's contrib operators (``com.microsoft``) rewritten as ONNX and npuc operators.

The rest of the optimizer and the quantizer then treat them like any other model:

- FusedConv: Conv (+ Z) and its activation (fuse-epilogue fuses them again as
  ``npuc::FusedConv``); NhwcConv: Conv between two Transposes; FusedMatMul: Transposes,
  MatMul and a Mul by alpha;
- Gelu, BiasGelu, FastGelu: ``npuc::Gelu`` (exact, or tanh) after the bias Add;
  QuickGelu: ``x * Sigmoid(alpha x)``; BiasAdd: two Adds; BiasSoftmax: Add, Softmax;
- the layer normalizations: the skip sum, then LayerNormalization (opset 17 and later)
  or its ReduceMean/Sqrt/Div form; the simplified (RMS) ones with no mean;
- attention and the quantized operators: ``contrib_expand_attention`` and
  ``contrib_expand_quant``.

A node that has no rewrite in its configuration (an attention with a past state, say)
stays as it is, with the reason in the decision log; it runs with its kernel on the host
CPU. The pass runs first at -O1 and above, and in compile preparation at -O0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.compiler.ops.emit import emit_activation
from npuc.ir.graph import Graph
from npuc.ir.types import TensorType

from . import contrib_expand_attention, contrib_expand_quant  # noqa: F401  (their expansions)
from .base import Pass, register
from .contrib_registry import EXPAND, MS, const, dtype_of, expansion, opset, rank, reduce_mean_last, used
from .pattern import Match
from .rewrite import Rule, apply_rules
from .shape_inference import refine_types


class ExpandContrib(Rule):
    """A contrib operator becomes the ONNX and npuc operators it stands for."""

    roots = None
    quiet = True

    def match(self, node):
        if node.domain == MS and node.op_type in EXPAND:
            yield Match(node, covered=[(node, True)])

    def check(self, m):
        return EXPAND[m.root.op_type][0](m.root)

    def rewrite(self, m, b):
        return EXPAND[m.root.op_type][1](m.root, b)


@register
@dataclass
class ExpandContribOps(Pass):
    """Rewrite onnxruntime's com.microsoft operators as ONNX and npuc operators."""

    name = "expand-contrib"

    def run(self, graph: Graph) -> bool:
        if not any(n.domain == MS for n in graph.nodes):
            return False
        _infer_missing(graph)
        done = apply_rules(graph, [ExpandContrib()], self.name) > 0
        if any(n.domain == "npuc" for n in graph.nodes):
            graph.opset.setdefault("npuc", 1)
        for node in graph.nodes:
            if node.domain == MS:
                reason = EXPAND[node.op_type][0](node) if node.op_type in EXPAND else \
                    "npuc has no rewrite of it into ONNX operators"
                from npuc.ir.decisions import log_of

                log_of(graph).record(self.name, node.name, "kept",
                                     f"{node.op_type} stays as it is: {reason}; it runs with "
                                     "its kernel")
        return done


def _infer_missing(graph: Graph) -> None:
    """onnx's shape inference stops at operators it does not know: the types after a
    contrib operator come from npuc's schemas, in order."""
    refine_types(graph, _shapeless, lambda new, old: new is not None and _shapeless(old))


def _shapeless(t) -> bool:
    return not isinstance(t, TensorType) or t.shape is None


# -- convolutions and products ---------------------------------------------------------
@expansion("FusedConv", lambda n: None if n.attrs.get("activation", "") in (
    "", "Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "HardSigmoid") else
    f"activation {n.attrs.get('activation')!r} is not one npuc knows")
def _fused_conv(node, b):
    attrs = {k: v for k, v in node.attrs.items() if k not in ("activation", "activation_params")}
    t = node.outputs[0].type
    y = b.op("Conv", *node.inputs[:3], out_type=t, **attrs)
    if node.input(3) is not None:
        y = b.op("Add", y, node.inputs[3], out_type=t)
    params = list(node.attrs.get("activation_params") or [])
    act = node.attrs.get("activation", "")
    if act == "LeakyRelu" and not params:
        params = [0.01]
    if act == "HardSigmoid" and not params:
        params = [0.2, 0.5]
    return [emit_activation(b, y, act, params, opset(node))]


@expansion("NhwcConv", lambda n: None if rank(n.inputs[0]) else "the input rank is not known")
def _nhwc_conv(node, b):
    r = rank(node.inputs[0])
    x = b.op("Transpose", node.inputs[0], perm=[0, r - 1, *range(1, r - 1)])
    y = b.op("Conv", x, *node.inputs[1:], **node.attrs)
    return [b.op("Transpose", y, perm=[0, *range(2, r), 1], out_type=node.outputs[0].type)]


def _matmul_ranks(node):
    if rank(node.inputs[0]) is None or rank(node.inputs[1]) is None:
        return "the input ranks are not known"
    return None


@expansion("FusedMatMul", _matmul_ranks)
def _fused_matmul(node, b):
    from npuc.compiler.executor.kernels.contrib import fused_matmul_perm

    ops = []
    for i, (t, tb) in enumerate((("transA", "transBatchA"), ("transB", "transBatchB"))):
        v, r = node.inputs[i], rank(node.inputs[i])
        perm = fused_matmul_perm(r, node.attrs.get(t, 0), node.attrs.get(tb, 0)) \
            if r >= 2 else list(range(r))
        ops.append(v if perm == list(range(r)) else b.op("Transpose", v, perm=perm))
    y = b.op("MatMul", *ops)
    alpha = node.attrs.get("alpha", 1.0)
    if alpha != 1.0:
        y = b.op("Mul", y, const(b, alpha, node.inputs[0]), out_type=y.type)
    return [y]


# -- activations and sums --------------------------------------------------------------
def _gelu(b, x, approximate, out):
    return b.op("Gelu", x, domain="npuc", approximate=approximate,
                out_type=None if out.type is None else out.type.with_quant(None))


@expansion("Gelu")
def _ms_gelu(node, b):
    return [_gelu(b, node.inputs[0], "none", node.outputs[0])]


@expansion("BiasGelu")
def _bias_gelu(node, b):
    return [_gelu(b, b.op("Add", *node.inputs[:2]), "none", node.outputs[0])]


@expansion("FastGelu")
def _fast_gelu(node, b):
    x = node.inputs[0]
    if node.input(1) is not None:
        x = b.op("Add", x, node.inputs[1])
    return [_gelu(b, x, "tanh", node.outputs[0])]


@expansion("QuickGelu")
def _quick_gelu(node, b):
    x, t = node.inputs[0], node.outputs[0].type
    scaled = b.op("Mul", x, const(b, node.attrs.get("alpha", 1.702), x), out_type=t)
    return [b.op("Mul", x, b.op("Sigmoid", scaled, out_type=t), out_type=t)]


@expansion("BiasAdd")
def _bias_add(node, b):
    t = node.outputs[0].type
    return [b.op("Add", b.op("Add", *node.inputs[:2], out_type=t), node.inputs[2], out_type=t)]


def _softmax_axis(node):
    r, axis = rank(node.inputs[0]), node.attrs.get("axis", 1)
    if r is None:
        return "the input rank is not known"
    if opset(node) < 13 and axis % r != r - 1:
        return "Softmax before opset 13 normalizes over flattened axes, not one axis"
    return None


@expansion("BiasSoftmax", _softmax_axis)
def _bias_softmax(node, b):
    s = b.op("Add", *node.inputs[:2])
    return [b.op("Softmax", s, axis=node.attrs.get("axis", 1), out_type=node.outputs[0].type)]


# -- normalizations --------------------------------------------------------------------
def _norm_outputs(node):
    if used(node, 1) or used(node, 2):
        return "its mean or inverse standard deviation output is used"
    return None


def _norm(b, x, gamma, beta, eps, simplified, node):
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` over the last axis (no mean when
    simplified); ONNX LayerNormalization where the opset has it."""
    ops, t = opset(node), node.outputs[0].type
    if not simplified and ops >= 17:
        if beta is None:
            beta = b.const(np.zeros(gamma.const.shape if gamma.const is not None else 1,
                                    dtype_of(x))) if gamma.const is not None else None
        return b.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=float(eps),
                    out_type=t)
    d = x if simplified else b.op("Sub", x, reduce_mean_last(b, x, ops), out_type=x.type)
    var = reduce_mean_last(b, b.op("Mul", d, d, out_type=x.type), ops)
    std = b.op("Sqrt", b.op("Add", var, const(b, eps, x)))
    y = b.op("Mul", b.op("Div", d, std, out_type=x.type), gamma, out_type=t)
    return y if beta is None else b.op("Add", y, beta, out_type=t)


def _skip_sum(b, node, bias_index):
    t = node.inputs[0].type
    s = b.op("Add", node.inputs[0], node.inputs[1], out_type=t)
    if node.input(bias_index) is not None:
        s = b.op("Add", s, node.inputs[bias_index], out_type=t)
    return s


@expansion("SkipLayerNormalization", _norm_outputs)
def _skip_layer_norm(node, b):
    s = _skip_sum(b, node, 4)
    y = _norm(b, s, node.inputs[2], node.input(3), node.attrs.get("epsilon", 1e-12), False,
              node)
    return [y, None, None, s]


@expansion("SkipSimplifiedLayerNormalization", _norm_outputs)
def _skip_simplified(node, b):
    s = _skip_sum(b, node, 3)
    y = _norm(b, s, node.inputs[2], None, node.attrs.get("epsilon", 1e-12), True, node)
    return [y, None, None, s]


def _last_axis_norm(node):
    r = rank(node.inputs[0])
    if r is None or node.attrs.get("axis", -1) % r != r - 1:
        return "it normalizes over more than the last axis"
    return _norm_outputs(node)


@expansion("LayerNormalization", _last_axis_norm)
def _ms_layer_norm(node, b):
    return [_norm(b, node.inputs[0], node.inputs[1], node.input(2),
                  node.attrs.get("epsilon", 1e-5), False, node)]


@expansion("SimplifiedLayerNormalization",
           lambda n: _last_axis_norm(n) if not used(n, 1) else "its inv_std_var output is used")
def _simplified_layer_norm(node, b):
    return [_norm(b, node.inputs[0], node.inputs[1], None, node.attrs.get("epsilon", 1e-5),
                  True, node)]


def expand_contrib(graph: Graph) -> bool:
    """Run the rewrite on ``graph`` (compile preparation does this at every level)."""
    return ExpandContribOps().run(graph)

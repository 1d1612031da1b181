"""Models that arrive quantized: QDQ (onnxruntime's ``quantize_static``, NNCF, PyTorch
quantization-aware export) and QOperator (QLinearConv, QGemm, ...).

The model's own scales and zero points are kept; nothing is recalibrated unless asked:

1. QOperator nodes are first rewritten in QDQ form (``expand-contrib``);
2. :func:`take_parameters` reads every ``QuantizeLinear -> DequantizeLinear`` pair on an
   activation as that value's int8 parameters and removes the pair; every
   ``DequantizeLinear`` of a constant becomes the float constant, which remembers its
   scale and zero point (``meta["quant"]``) so the integer weights are rebuilt exactly.
   The graph is then an ordinary float graph that the optimizer works on;
3. :func:`quantize_prequantized` runs npuc's integer rewrite with those parameters in
   place of calibrated ones: npuc's QConv, QMatMul, QAdd, ... with the model's scales.

uint8 tensors become int8 with the zero point moved by 128 (the same real values).
Values the model left in float stay float. Weights with a nonzero zero point (uint8
asymmetric weights) are quantized again symmetrically by npuc, since the chips' integer
units take symmetric weights; the decision log says so.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph
from npuc.ir.types import QuantParams, TensorType

STAGE = "prequantized"


def is_prequantized(graph: Graph) -> bool:
    """Whether the graph quantizes its activations itself (QuantizeLinear, or QOperator
    nodes). A model quantized only dynamically or only in its weights is not: its
    activations are float, and npuc quantizes them as for a float model."""
    from npuc.compiler.passes.contrib_expand_quant import QDQ_FORMS

    ops = {"QuantizeLinear", "QLinearMatMul", "QLinearConv"} | set(QDQ_FORMS)
    return any(n.op_type in ops and n.domain in ("", "com.microsoft") for n in graph.nodes)


def as_int8(scale, zero_point) -> QuantParams | None:
    """Per-tensor int8 parameters for an int8 or uint8 quantization, or None."""
    s, z = np.asarray(scale), np.asarray(zero_point)
    if s.size != 1 or z.size != 1 or z.dtype not in (np.int8, np.uint8):
        return None
    zp = int(z.reshape(-1)[0]) - (128 if z.dtype == np.uint8 else 0)
    return QuantParams(np.float32(s.reshape(-1)[0]), np.int8(zp))


def _params(node):
    s, z = node.input(1), node.input(2)
    if s is None or s.const is None or (z is not None and z.const is None):
        return None
    zp = z.const if z is not None else np.zeros((), np.uint8)
    return s.const, zp


# operators that move or select quantized values without arithmetic: on a quantized
# tensor they compute the same in float between a DequantizeLinear and a QuantizeLinear
PASSTHROUGH = {"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
               "Identity", "Slice", "Gather", "Split", "Pad", "SpaceToDepth", "DepthToSpace",
               "Resize", "Tile", "Expand"}


def float_passthrough(graph: Graph) -> int:
    """``P(xq)`` on a quantized tensor becomes ``Q(P(DQ(xq)))`` with ``xq``'s parameters
    (QOperator models run MaxPool, Flatten, ... on uint8); how many."""
    from npuc.compiler.passes.rewrite import Builder

    params: dict[int, tuple] = {}
    count = 0
    for node in list(graph.nodes):
        if node.op_type == "QuantizeLinear" and not node.domain and _params(node) is not None:
            params[id(node.outputs[0])] = (node.inputs[1], node.input(2))
            continue
        x = node.input(0)
        if node.domain or node.op_type not in PASSTHROUGH or x is None or id(x) not in params:
            continue
        if len(node.outputs) != 1 or (node.op_type == "Pad" and node.input(2) is not None):
            continue
        scale, zp = params[id(x)]
        b = Builder(graph, node)
        xf = b.op("DequantizeLinear", x, scale, zp,
                  out_type=TensorType("f32", x.type.shape if isinstance(x.type, TensorType)
                                      else None))
        node.set_input(0, xf)
        y = node.outputs[0]
        qt = y.type
        y.type = TensorType("f32", qt.shape) if isinstance(qt, TensorType) else None
        qn = graph.create_node("QuantizeLinear", [y, scale, zp], [f"{y.name}_q"],
                               name=f"{node.name}_quantize", after=node)
        qn.outputs[0].type = qt
        for user, i in list(y.uses):
            if user is not qn:
                user.set_input(i, qn.outputs[0])
        if any(o is y for o in graph.outputs):
            graph.outputs[[o is y for o in graph.outputs].index(True)] = qn.outputs[0]
        params[id(qn.outputs[0])] = (scale, zp)
        count += 1
    return count


def take_parameters(graph: Graph) -> dict[str, QuantParams]:
    """Remove the model's Q/DQ pairs and dequantize its constants; the int8 parameters of
    each activation, by value name."""
    from npuc.compiler.passes.contrib_expand_quant import expand_onnx_qoperators

    act: dict[str, QuantParams] = {}
    log = log_of(graph)
    expand_onnx_qoperators(graph)
    float_passthrough(graph)
    for d in list(graph.nodes):
        if d.graph is None or d.op_type != "DequantizeLinear" or d.domain:
            continue
        params = _params(d)
        x = d.inputs[0]
        if params is None:
            continue
        if x.const is not None:
            _dequantize_constant(graph, d, log)
            continue
        q = x.producer
        if q is None or q.op_type != "QuantizeLinear" or q.domain or _params(q) is None:
            continue
        if q.inputs[0].const is not None and _quantize_constant(graph, q):
            _dequantize_constant(graph, d, log)  # weights as PyTorch exports them
            continue
        qp = as_int8(*_params(q))
        if qp is None or not _same(_params(q), params):
            continue
        v = _clamp_at_zero(graph, q, qp)
        out = d.outputs[0]
        is_output = any(o is out for o in graph.outputs)
        out.replace_all_uses_with(v)
        graph.remove_node(d)
        if not x.uses and not any(o is x for o in graph.outputs):
            graph.remove_node(q)
        if is_output:
            _rename(graph, v, out.name)
        act.setdefault(v.name, qp)
    _drop_unused_constants(graph)
    pairs = len(act)
    _through_monotone(graph, act)
    log.record(STAGE, graph.name, "model parameters",
               f"the model's own quantization is kept: {pairs} activation scales and "
               "zero points read from its QuantizeLinear/DequantizeLinear pairs")
    return act


# operators whose result can be negative (a Relu after them may have been removed)
SIGNED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul"}


def _clamp_at_zero(graph, q, qp: QuantParams):
    """The float value a Q/DQ pair gives back: its input, through a Relu when the pair's
    range starts at 0 (onnxruntime removes a Relu before such a pair, whose saturation
    does the clamping; the float graph needs it back, the integer rewrite absorbs it)."""
    v = q.inputs[0]
    p = v.producer
    if int(qp.zero_point) != -128 or p is None or p.domain or p.op_type not in SIGNED:
        return v
    relu = graph.create_node("Relu", [v], [f"{v.name}_relu"], name=f"{v.name}_relu", after=p)
    relu.outputs[0].type = v.type
    return relu.outputs[0]


# quantize(P(x)) == P(quantize(x)) with the same parameters: the input of such an
# operator may take its output's parameters when the model gives the input none
MONOTONE = {"MaxPool", "Relu", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
            "Identity"}


def _through_monotone(graph, act) -> None:
    """Give a value the model left unquantized the parameters of the quantized result of
    the data-movement or monotone operator that alone reads it (a MaxPool after a Relu
    in models quantized without onnxruntime's pre-processing): the same numbers."""
    for node in reversed(list(graph.nodes)):
        x, y = node.input(0), node.outputs[0]
        if node.domain or node.op_type not in MONOTONE or x is None or x.const is not None:
            continue
        if y.name in act and x.name not in act and len(x.uses) == 1 and \
                not any(o is x for o in graph.outputs):
            act[x.name] = act[y.name]


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a[0], np.float32), np.asarray(b[0], np.float32)) and \
        np.array_equal(np.asarray(a[1]).astype(np.int32), np.asarray(b[1]).astype(np.int32))


def _quantize_constant(graph, q) -> bool:
    """A QuantizeLinear of a float constant computed now (its integer tensor in place of
    its output), so that the DequantizeLinear after it reads a quantized constant."""
    from npuc.compiler.executor.interpreter import evaluate

    out = q.outputs[0]
    if len(out.uses) != 1 or any(o is out for o in graph.outputs):
        return False
    ins = [None if v is None else v.const for v in q.inputs]
    values = evaluate(q, ins, opset=graph.opset_of("") or 17)[0]
    c = graph.add_constant(f"{out.name}_const", values)
    user, i = out.uses[0]
    user.set_input(i, c)
    graph.remove_node(q)
    return True


def _dequantize_constant(graph, d, log):
    from npuc.compiler.passes.contrib_expand_quant import dequantized_const
    from npuc.compiler.passes.rewrite import Builder

    b = Builder(graph, d)
    axis = d.attrs.get("axis", 1)
    c = dequantized_const(b, d.inputs[0], d.inputs[1], d.input(2), axis,
                          hint=d.outputs[0].name + "_const")
    q = c.meta.get("quant")
    if d.inputs[0].const.dtype == np.int32:  # a bias: plain float, npuc rebuilds it
        c.meta.pop("quant", None)
    elif q is not None and (q.zero_point.dtype != np.int8 or np.any(q.zero_point != 0)):
        c.meta.pop("quant", None)
        log.record(STAGE, d.outputs[0].name, "weights quantized again",
                   "the model's weights have a zero point; the chips' integer units take "
                   "symmetric int8 weights, so npuc quantizes these weights itself")
    out = d.outputs[0]
    is_output = any(o is out for o in graph.outputs)
    out.replace_all_uses_with(c)
    if not is_output:
        graph.remove_node(d)


def _rename(graph, v, name):
    if v.producer is not None:
        graph.rename(v, name)


def _drop_unused_constants(graph):
    for v in list(graph.constants.values()):
        if not v.uses and not any(o is v for o in graph.outputs):
            graph.remove_constant(v)


def quantize_prequantized(graph: Graph, target, act: dict[str, QuantParams]) -> Graph:
    """The int8 graph for ``target`` with the model's parameters ``act`` (from
    :func:`take_parameters`) and its weights' own scales."""
    from .prepare import prepare
    from .rewrite import Rewriter
    from .scheme import scheme_for
    from .unfuse import split_fused

    scheme = scheme_for(target, "int8")
    float_graph = prepare(graph)
    split_fused(float_graph)
    g = float_graph.copy()
    rw = Rewriter(g, scheme, act, None, {"bias_correction": False, "keep_float": set()})
    # the model quantizes its inputs itself: int8 from the start, so that an elementwise
    # operator first in the model runs in int8 too (unused twins are removed at the end)
    for v in g.inputs:
        if v.name in act and v.uses:
            rw.quantized(v, g.first)
    rw.run(set())
    if log_of(g) is not log_of(float_graph):
        log_of(g).entries.extend(list(log_of(float_graph)))
    g.meta["quantize"] = {"scheme": scheme, "float_graph": float_graph, "map": rw.float_of}
    return g


def why_not_used(target, precision: str, calibration) -> str:
    """The decision-log sentence for a pre-quantized model compiled another way."""
    if precision in ("none", "fp32"):
        return ("--quantize none: the model's quantized weights are dequantized and the "
                "program computes in float32")
    if precision == "int8":
        return ("--calibration given: npuc calibrates and quantizes again instead of using "
                "the model's own scales")
    has = "does not compute in int8" if "int8" not in target.quant.dtypes else \
        f"was asked for {precision}"
    return (f"{target.name} {has}: the model's int8 weights are dequantized and npuc "
            f"quantizes the float model to {precision}")

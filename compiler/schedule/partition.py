"""Partition: which nodes run on the chip and which on the host CPU, each with a reason.

The reasons come from the target's placement rules (:func:`npuc.targets.place`): the
sentence written next to a limit in the chip file, or "operator X is not supported". Two
more reasons are the scheduler's own: a node whose shapes are not known after the batch
is fixed, and a node too large for the chip's SRAM even at its smallest tile (decided
later, by :mod:`npuc.compiler.schedule.tiling`).

Quantized graphs use npuc's integer ops (``npuc::QConv``, ``npuc::QAdd``, ...) and
QuantizeLinear/DequantizeLinear at the edges of quantized regions; chip files name the
float ops. A quantized op is placed as its float op would be (same limits), provided the
chip computes in int8; a quantize or dequantize runs on the chip when the chip has int8,
as the conversion step of the kernel next to it.

A chip that computes only in int8 (Warboy, X220) cannot run a node that the quantizer
left in float, whatever its operator table says: such a node of a quantized graph runs
on the CPU, and its reason says why it stayed in float (from the quantizer's decision
log). An unquantized graph (``--quantize none``) is left to the operator table, since
its cost is estimated as if it were quantized (docs/compile.md).
"""

from __future__ import annotations

import numpy as np

from npuc.ir.decisions import log_of
from npuc.targets.precision import FLOAT_PRECISIONS

NPU, CPU = "npu", "cpu"
CONVERSIONS = {"QuantizeLinear", "DequantizeLinear"}
# ONNX's integer products (onnxruntime's quantize_dynamic writes MatMulInteger) and the
# float op whose work they do
INTEGER_PRODUCTS = {"MatMulInteger": "MatMul", "ConvInteger": "Conv"}
INTEGER_OPS = {"Requantize": "Requantize", "Lut": "Lut"}


class _AsFloat:
    """A view of a quantized node as the float op it computes, for the placement rules."""

    def __init__(self, node, op_type: str, domain: str):
        self._node, self.op_type, self.domain = node, op_type, domain

    def __getattr__(self, name):
        return getattr(self._node, name)

    def describe(self) -> str:
        return self._node.describe()


def _place(node, target):
    from npuc.targets.placement import Placement, place_node

    p = place_node(node, target)
    if p.on_npu or target.kind == CPU:
        return p
    int8 = "int8" in target.quant.dtypes
    if node.domain in ("", "ai.onnx") and node.op_type in CONVERSIONS:
        if int8:
            return Placement(NPU, f"{target.name} computes in int8 and converts at the edge "
                                  "of a quantized region")
        return p
    if node.domain in ("", "ai.onnx") and int8 and node.op_type == "DynamicQuantizeLinear":
        return _dynamic_quantize(node, target, p)
    if node.domain in ("", "ai.onnx") and int8 and node.op_type in INTEGER_PRODUCTS:
        return _integer_product(node, target, p)
    if node.domain == "npuc" and node.op_type in INTEGER_OPS and int8:
        return Placement(NPU, f"{target.name} applies {node.op_type} in its int8 vector unit")
    if node.domain == "npuc" and node.op_type.startswith("Q") and int8:
        base = node.op_type[1:]
        fused = "activation" in node.attrs and target.rule(f"npuc::Fused{base}") is not None
        proxy = _AsFloat(node, f"Fused{base}", "npuc") if fused else _AsFloat(node, base, "")
        q = place_node(proxy, target)
        if q.on_npu:
            return Placement(NPU, f"{target.name} runs {base} in int8 ({q.reason})")
        return Placement(CPU, q.reason, q.detail)
    return p


def _dynamic_quantize(node, target, p):
    """DynamicQuantizeLinear: the tensor's range, then uint8 asymmetric per tensor. A chip
    whose activations are asymmetric per-tensor int8 computes the same scale and zero
    point (uint8 is int8 with the zero point moved by 128) in its vector unit."""
    from npuc.targets.placement import Placement

    if target.quant.activations != "asymmetric":
        return Placement(CPU, f"{target.name} quantizes activations symmetrically; "
                              "DynamicQuantizeLinear's scale is asymmetric")
    return Placement(NPU, f"{target.name} computes the tensor's range and quantizes it "
                          "(asymmetric per tensor, as its activations) in its vector unit")


def _integer_product(node, target, p):
    """MatMulInteger, ConvInteger: the int32 accumulation of the MAC array, placed as
    their float op in int8 when the weights are what the chip takes."""
    from npuc.targets.placement import Placement, place_node

    base = INTEGER_PRODUCTS[node.op_type]
    w, wz = node.input(1), node.input(3)
    if w is None or w.const is None:
        return Placement(CPU, f"{node.op_type} of two activations runs on the host",
                         "its second operand is not constant weights")
    if target.quant.weights_symmetric and wz is not None and \
            (wz.const is None or np.any(wz.const != 0)):
        return Placement(CPU, f"{target.name} takes symmetric int8 weights",
                         "these weights have a nonzero zero point")
    q = place_node(_AsFloat(node, base, ""), target)
    if q.on_npu:
        return Placement(NPU, f"{target.name} runs {base} in int8 ({q.reason})")
    return Placement(CPU, q.reason, q.detail)


def _is_float(value) -> bool:
    dt = getattr(getattr(value, "type", None), "dtype", None)
    return dt is not None and (dt.name.startswith("f") or dt.name == "bf16")


def _float_reason(node, graph, target) -> str | None:
    """Why ``node`` cannot run on an int8-only chip, or None when it can."""
    if node.domain in ("", "ai.onnx") and node.op_type in CONVERSIONS | {
            "DynamicQuantizeLinear"}:
        return None
    if not any(v is not None and v.const is None and _is_float(v)
               for v in list(node.inputs) + list(node.outputs)):
        return None
    why = [d.reason for d in log_of(graph).about(node.name)
           if d.stage == "quantize" and d.action == "kept float"]
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
    because = why[-1] if why else f"npuc's quantizer has no integer form of {op}"
    return f"{target.name} computes only in int8; this node stays in float because {because}"


def _kept_float_reason(node, graph, target) -> str | None:
    """Why a node the quantizer kept in float32, because fp16 would overflow, cannot run
    on a chip with no float32 arithmetic (ATOM: int8 and fp16); None for other nodes."""
    why = [d.reason for d in log_of(graph).about(node.name)
           if d.stage == "quantize" and d.action == "kept float" and
           d.reason.startswith(("fp16 overflow", "fp16-overflow"))]
    if not why or not any(v is not None and v.const is None and _is_float(v)
                          for v in list(node.inputs) + list(node.outputs)):
        return None
    return (f"{target.name} has no float32 arithmetic; this node stays in float32 because "
            f"{why[-1]}")


def partition(graph, target) -> dict[str, tuple[str, str]]:
    """``{node name: (device, reason)}`` for every node, recorded in the decision log."""
    from .control_flow import host_reason, is_control_flow
    from .slices import shape_of

    log = log_of(graph)
    result = {}
    int8_only = target.kind != CPU and "quantize" in graph.meta and \
        not any(d in FLOAT_PRECISIONS for d in target.quant.dtypes)
    no_fp32 = target.kind != CPU and "quantize" in graph.meta and \
        target.peak_ops("fp32") is None
    for node in graph.nodes:
        p = _place(node, target)
        device, reason = p.device, p.reason + (f" ({p.detail})" if p.detail else "")
        if is_control_flow(node):
            device, reason = CPU, host_reason(node)
        floating = _float_reason(node, graph, target) if int8_only and device == NPU else None
        if not floating and device == NPU and no_fp32 and not int8_only:
            floating = _kept_float_reason(node, graph, target)
        if floating:
            device, reason = CPU, floating
        unknown = [v.name for v in list(node.inputs) + list(node.outputs)
                   if v is not None and shape_of(v) is None]
        if device == NPU and unknown:
            device, reason = CPU, f"the shape of %{unknown[0]} is not known at compile time"
        result[node.name] = (device, reason)
        log.record("partition", node.name, "npu" if device == NPU else "cpu", reason,
                   op=node.qualified_type)
    return result

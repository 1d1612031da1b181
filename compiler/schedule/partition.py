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
"""

from __future__ import annotations

from npuc.ir.decisions import log_of

NPU, CPU = "npu", "cpu"
CONVERSIONS = {"QuantizeLinear", "DequantizeLinear"}
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


def partition(graph, target) -> dict[str, tuple[str, str]]:
    """``{node name: (device, reason)}`` for every node, recorded in the decision log."""
    from .slices import shape_of

    log = log_of(graph)
    result = {}
    for node in graph.nodes:
        p = _place(node, target)
        device, reason = p.device, p.reason + (f" ({p.detail})" if p.detail else "")
        unknown = [v.name for v in list(node.inputs) + list(node.outputs)
                   if v is not None and shape_of(v) is None]
        if device == NPU and unknown:
            device, reason = CPU, f"the shape of %{unknown[0]} is not known at compile time"
        result[node.name] = (device, reason)
        log.record("partition", node.name, "npu" if device == NPU else "cpu", reason,
                   op=node.qualified_type)
    return result

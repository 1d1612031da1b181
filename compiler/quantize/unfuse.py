"""The optimizer's fused operators, split back into the parts the integer rules know.

``npuc.optimize`` (-O2) fuses Conv+Relu into ``npuc::FusedConv`` and Linear layers into
``npuc::FusedMatMul``, and recognises ``npuc::Attention``. Their integer forms are built
from the parts, so before calibration each fused node becomes:

- ``FusedConv`` / ``FusedGemm``: the Conv or Gemm, then its activation as one node;
- ``FusedMatMul``: the MatMul, the Add of its bias, then its activation;
- ``Attention``: its MatMuls, the scaling, the mask and the Softmax (the ONNX nodes
  its decomposition in :mod:`npuc.compiler.ops.attention`).

The activation stays one node so that the rules turn it into one thing: Relu and Clip
into the clamp of the integer op before it (no extra pass), any other activation into one
256-entry table (``npuc::Lut``) after it. GELU becomes ``npuc::Gelu`` rather than its
Erf/Div/Mul expansion, which would cost several int8 roundings and an integer Mul of
two tensors. Calibration then observes the value between the op and its activation,
which the Lut's input scale needs.

The fused kernels stay for float formats (bf16, fp16, fp8): ``floatq`` rounds their
inputs in place, the epilogue runs in fp32 as on the chip.
"""

from __future__ import annotations

from npuc.compiler.ops import DECOMPOSE, emit_activation
from npuc.compiler.passes.pattern import Match
from npuc.compiler.passes.rewrite import Rule, apply_rules
from npuc.ir.graph import Graph

BASE = {"FusedConv": "Conv", "FusedGemm": "Gemm", "FusedMatMul": "MatMul"}
_OWN = ("activation", "activation_params")


class SplitFused(Rule):
    """A fused npuc operator becomes its base operator and its activation."""

    roots = (*BASE, "Attention")
    quiet = True

    def match(self, node):
        if node.domain == "npuc" and (node.op_type in BASE or node.op_type == "Attention"):
            yield Match(node, covered=[(node, True)])

    def rewrite(self, m, b):
        node = m.root
        if node.op_type == "Attention":
            return DECOMPOSE[("npuc", "Attention")](node, b)
        t = node.outputs[0].type
        act = node.attrs.get("activation", "")
        params = list(node.attrs.get("activation_params", []))
        if node.op_type == "FusedMatMul":
            y = b.op("MatMul", *node.inputs[:2], out_type=t)
            if node.input(2) is not None:
                y = b.op("Add", y, node.inputs[2], out_type=t)
        else:
            attrs = {k: v for k, v in node.attrs.items() if k not in _OWN}
            y = b.op(BASE[node.op_type], *node.inputs, out_type=t, **attrs)
        if act in ("Gelu", "GeluTanh"):
            return b.op("Gelu", y, domain="npuc", out_type=t,
                        approximate="tanh" if act == "GeluTanh" else "none")
        return emit_activation(b, y, act, params, node.graph.opset_of("") or 17)


def split_fused(graph: Graph) -> int:
    """Split every fused npuc operator of ``graph`` in place; the number split."""
    if not any(n.domain == "npuc" and (n.op_type in BASE or n.op_type == "Attention")
               for n in graph.nodes):
        return 0
    count = apply_rules(graph, [SplitFused()], "quantize")
    if count:
        graph.opset.setdefault("", 17)
    return count

"""The optimizer's fused operators, split back into the parts the integer rules know.

``npuc.optimize`` (-O2) fuses Conv+Relu into ``npuc::FusedConv`` and Linear layers into
``npuc::FusedMatMul``, and recognises ``npuc::Attention``. Their integer forms are built
from the parts, so before calibration each fused node becomes:

- ``FusedConv`` / ``FusedGemm``: the Conv or Gemm, then its activation as one node
  (but a ``FusedConv`` whose epilogue is a clamp, Relu or Clip, or none stays whole: the
  quantized Conv takes the clamp as the range of its int8 output, see :mod:`.epilogue`);
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

from npuc.compiler.ops import DECOMPOSE
from npuc.compiler.ops.fused import BASE, split_epilogue
from npuc.compiler.passes.pattern import Match
from npuc.compiler.passes.rewrite import Rule, apply_rules
from npuc.ir.graph import Graph

from .epilogue import fused_clamp


def _splits(node) -> bool:
    """Whether the quantizer splits ``node``: a fused npuc operator or Attention, but not
    a FusedConv whose epilogue is a clamp."""
    if node.domain != "npuc" or not (node.op_type in BASE or node.op_type == "Attention"):
        return False
    return not (node.op_type == "FusedConv" and fused_clamp(node) is not None)


class SplitFused(Rule):
    """A fused npuc operator becomes its base operator and its activation."""

    roots = (*BASE, "Attention")
    quiet = True

    def match(self, node):
        if _splits(node):
            yield Match(node, covered=[(node, True)])

    def rewrite(self, m, b):
        if m.root.op_type == "Attention":
            return DECOMPOSE[("npuc", "Attention")](m.root, b)
        return split_epilogue(m.root, b, gelu_op=True)


def split_fused(graph: Graph) -> int:
    """Split every fused npuc operator of ``graph`` in place; the number split."""
    if not any(_splits(n) for n in graph.nodes):
        return 0
    count = apply_rules(graph, [SplitFused()], "quantize")
    if count:
        graph.opset.setdefault("", 17)
    return count

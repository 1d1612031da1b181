"""The graph as the cost model should see it: at the precision the chip will compute in.

When the graph has been quantized its types already say ``i8`` or ``bf16`` and this view is
the graph itself. When it has not (``--quantize none``), float tensors
are retyped to the precision the program is estimated at, so that bytes moved and the MAC
rate are the chip's and not those of float32, which no NPU here computes in. The view is a
copy: the graph that is lowered and simulated keeps its types.
"""

from __future__ import annotations

from npuc.ir.types import TensorType
from npuc.targets.precision import IR_DTYPE, precision_of


def graph_precision(graph) -> str | None:
    """The precision of the graph's first MAC op input, or None when it is float32."""
    for node in graph.nodes:
        for v in node.inputs:
            t = getattr(v, "type", None)
            if isinstance(t, TensorType) and t.dtype.name != "f32" and \
                    precision_of(t.dtype.name) is not None:
                return precision_of(t.dtype.name)
    return None


def cost_view(graph, precision: str):
    """A copy of ``graph`` whose float32 tensors are ``precision``; nodes keep their names."""
    want = IR_DTYPE.get(precision, "f32")
    if want == "f32":
        return graph
    view = graph.copy()
    for v in view.values():
        t = v.type
        if isinstance(t, TensorType) and t.dtype.name == "f32":
            v.type = t.with_dtype(want)
    return view

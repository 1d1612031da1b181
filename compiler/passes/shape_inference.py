"""Shape propagation."""

from __future__ import annotations

from dataclasses import dataclass

from npuc.ir.graph import Graph
from npuc.ir.infer import infer_node
from npuc.ir.types import TensorType

from .base import Pass, register


@register
@dataclass
class InferShapes(Pass):
    """Give every value the most precise type shape inference can find.

    Only values whose shape is unknown or has unknown or made-up dimensions (``unk__3``,
    which ONNX invents where it lost track) are asked about again, in order, so that a
    shape learnt early (``batch``) flows to everything after it.
    """

    name = "infer-shapes"

    def run(self, graph: Graph) -> bool:
        return refine_types(graph, _vague, _better)


def refine_types(graph: Graph, vague, better) -> bool:
    """Ask shape inference again about each node with an output whose type is
    ``vague(type)``, in order; an output takes the inferred type where ``better(new,
    old)`` (keeping its quantization). Whether any type changed."""
    changed = False
    for node in graph.nodes:
        if not any(vague(v.type) for v in node.outputs if v is not None):
            continue
        try:
            types = infer_node(node)
        except Exception:  # a node inference cannot handle keeps what it has
            continue
        for v, t in zip(node.outputs, types):
            if v is not None and better(t, v.type):
                v.type = t if not isinstance(v.type, TensorType) or v.type.quant is None \
                    else t.with_quant(v.type.quant)
                changed = True
    return changed


def _vague(t) -> bool:
    if not isinstance(t, TensorType):
        return t is None
    return t.shape is None or any(d is None or (isinstance(d, str) and d.startswith("unk__"))
                                  for d in t.shape)


def _score(t) -> int:
    if not isinstance(t, TensorType) or t.shape is None:
        return -1
    return sum(2 if isinstance(d, int) else 1 if isinstance(d, str) and not d.startswith("unk__")
               else 0 for d in t.shape)


def _better(new, old) -> bool:
    if not isinstance(new, TensorType):
        return False
    if not isinstance(old, TensorType) or old.shape is None:
        return new.shape is not None or old is None
    return new.shape is not None and len(new.shape) == len(old.shape) and \
        _score(new) > _score(old)

"""Decompose npuc operators back into standard ONNX."""

from __future__ import annotations

from dataclasses import dataclass

from npuc.compiler.ops.emit import DECOMPOSE
from npuc.ir.graph import Graph

from .base import RulePass, register
from .pattern import Match
from .rewrite import Rule


class Decompose(Rule):
    """An npuc operator becomes the ONNX nodes it stands for."""

    roots = None
    quiet = True

    def match(self, node):
        if (node.domain, node.op_type) in DECOMPOSE:
            yield Match(node, covered=[(node, True)])

    def rewrite(self, m, b):
        return DECOMPOSE[(m.root.domain, m.root.op_type)](m.root, b)


@register
@dataclass
class DecomposeNpucOps(RulePass):
    """Rewrite npuc operators (FusedConv, Attention, ...) as standard ONNX operators.

    Export runs this, so that onnxruntime can run an optimized graph.
    """

    name = "decompose-npuc"
    rules = (Decompose,)


def decompose_npuc(graph: Graph) -> Graph:
    """The graph itself when it has no npuc operator, else a decomposed copy."""
    if not any((n.domain, n.op_type) in DECOMPOSE for g in graph.all_graphs() for n in g.nodes):
        return graph
    graph = graph.copy()
    DecomposeNpucOps().run(graph)
    graph.opset.pop("npuc", None)
    unique_node_names(graph)
    return graph


def unique_node_names(graph: Graph) -> None:
    """ONNX wants node names unique; a decomposed node's parts share its name."""
    seen: set[str] = set()
    for node in graph.nodes:
        if not node.name:
            continue
        name, k = node.name, 1
        while name in seen:
            name = f"{node.name}_{k}"
            k += 1
        node.name = name
        seen.add(name)

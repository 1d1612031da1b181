"""Dead code elimination."""

from __future__ import annotations

from dataclasses import dataclass

from npuc.ir.graph import Graph, subgraphs

from .base import Pass, register


@register
@dataclass
class DeadCodeElimination(Pass):
    """Remove nodes and constants whose results nothing reads.

    Walks the nodes backwards once, so that a chain of dead nodes goes in one sweep.
    Every operator npuc knows is free of side effects, so an unread node can go.
    """

    name = "dce"

    def run(self, graph: Graph) -> bool:
        outputs = {id(v) for v in graph.outputs}
        captured = _captured(graph)
        removed = 0
        node = graph.last
        while node is not None:
            prev = node.prev
            if all(v is None or (not v.uses and id(v) not in outputs and id(v) not in captured)
                   for v in node.outputs):
                graph.remove_node(node)
                removed += 1
            node = prev
        for v in list(graph.constants.values()):
            if not v.uses and id(v) not in outputs and id(v) not in captured:
                graph.remove_constant(v)
                removed += 1
        return removed > 0


def _captured(graph: Graph) -> set[int]:
    """Values read from inside subgraphs (their use lists live in the subgraph)."""
    from npuc.ir.analysis import captured_values

    found: set[int] = set()
    for node in graph.nodes:
        for sub in subgraphs(node):
            found.update(id(v) for v in captured_values(sub))
    return found

"""Common subexpression elimination."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.ir.graph import Graph, subgraphs

from .base import Pass, register

NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                    "Multinomial", "Bernoulli"}


@register
@dataclass
class CommonSubexpressions(Pass):
    """Merge nodes that compute the same thing, and constants with the same data.

    Two nodes are the same when they have the same operator, attributes and inputs; one
    pass in order finds whole duplicated chains, since merged inputs make their users
    equal in turn. Constants are compared by content up to ``max-const-elements``
    (hashing large weights costs more than it saves).
    """

    name = "cse"
    max_const_elements: int = 4096

    def run(self, graph: Graph) -> bool:
        changed = self._constants(graph)
        seen: dict[tuple, object] = {}
        for node in graph.nodes:
            if node.op_type in NONDETERMINISTIC or subgraphs(node):
                continue
            key = (node.domain, node.op_type, tuple(id(v) for v in node.inputs),
                   _freeze(node.attrs), len(node.outputs))
            other = seen.get(key)
            if other is None:
                seen[key] = node
                continue
            if any(o is v for v in node.outputs for o in graph.outputs):
                continue  # keep a graph output's own name
            for mine, theirs in zip(node.outputs, other.outputs):
                if mine is not None:
                    if theirs is None:
                        break
                    mine.replace_all_uses_with(theirs)
            else:
                graph.remove_node(node)
                changed = True
        return changed

    def _constants(self, graph: Graph) -> bool:
        seen: dict[tuple, object] = {}
        outputs = {id(v) for v in graph.outputs}
        changed = False
        for v in list(graph.constants.values()):
            c = v.const
            if c.size > self.max_const_elements or c.dtype == object or id(v) in outputs:
                continue
            key = (str(c.dtype), c.shape, c.tobytes(), v.type)
            other = seen.setdefault(key, v)
            if other is not v:
                v.replace_all_uses_with(other)
                if not v.uses:
                    graph.remove_constant(v)
                changed = True
        return changed


def _freeze(a):
    if isinstance(a, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in a.items()))
    if isinstance(a, (list, tuple)):
        return tuple(_freeze(x) for x in a)
    if isinstance(a, np.ndarray):
        return ("array", str(a.dtype), a.shape, a.tobytes())
    if isinstance(a, float) and a != a:
        return "nan"
    return a

"""Analyses over the IR that several stages share.

- :func:`reads` and :func:`captured_values`: what a node reads, including what its
  subgraphs capture from the enclosing graphs;
- :func:`topological_order`: an order where producers come first, or the node on a cycle;
  :func:`toposort` reorders a graph that way.

(:func:`npuc.ir.graph.subgraphs` gives the graphs held in a node's attributes.)
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .errors import VerifyError
from .graph import subgraphs

if TYPE_CHECKING:
    from .graph import Graph, Node, Value


def reads(node: "Node") -> Iterator["Value"]:
    """Every value a node reads: its inputs and what its subgraphs capture from outside."""
    for v in node.inputs:
        if v is not None:
            yield v
    for sub in subgraphs(node):
        yield from captured_values(sub)


def captured_values(graph: "Graph") -> list["Value"]:
    """Values from enclosing graphs read inside ``graph`` (or its own subgraphs)."""
    inner: set[int] = set()
    found: dict[int, Value] = {}
    for g in graph.all_graphs():
        for v in g.values():
            inner.add(id(v))
    for g in graph.all_graphs():
        for n in g.nodes:
            for v in n.inputs:
                if v is not None and id(v) not in inner:
                    found.setdefault(id(v), v)
        for v in g.outputs:
            if id(v) not in inner:
                found.setdefault(id(v), v)
    return list(found.values())


def topological_order(graph: "Graph") -> list["Node"]:
    """The nodes with every producer before its users, keeping the current order where it
    is already valid; VerifyError naming a node on a cycle when there is one."""
    nodes = list(graph.nodes)
    position = {id(n): i for i, n in enumerate(nodes)}
    pending = {}
    for n in nodes:
        pending[id(n)] = {id(v.producer) for v in reads(n) if v.producer is not None
                          and id(v.producer) in position and v.producer is not n}
    users: dict[int, list[Node]] = {}
    for n in nodes:
        for d in pending[id(n)]:
            users.setdefault(d, []).append(n)
    ready = [(position[id(n)], n) for n in nodes if not pending[id(n)]]
    heapq.heapify(ready)
    order = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for u in users.get(id(n), ()):
            deps = pending[id(u)]
            deps.discard(id(n))
            if not deps:
                heapq.heappush(ready, (position[id(u)], u))
    if len(order) != len(nodes):
        stuck = next(n for n in nodes if pending[id(n)])
        raise VerifyError(f"the graph has a cycle through {stuck.describe()}")
    return order


def toposort(graph: "Graph") -> None:
    """Reorder ``graph``'s nodes so that every producer comes before its users, keeping the
    current order where it is already valid; VerifyError naming a node on a cycle."""
    graph.reorder(topological_order(graph))

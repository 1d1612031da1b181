"""The SSA graph: :class:`Value`, :class:`Node`, :class:`Graph`.

Each value is defined once: by a node, as a graph input, or as a constant. The IR keeps
use-def chains itself (``value.producer``, ``value.uses``), so every edit below is O(1)
in the size of the graph. Nodes are kept in a doubly linked list in a valid order
(producers before users), so inserting and removing a node never copies the list
(:mod:`npuc.ir.node_order`).

Value names are unique across a graph and its subgraphs (one table, :mod:`npuc.ir.names`).
Values and nodes are defined in :mod:`npuc.ir.node` (and importable from here); analyses
over a graph (what a node reads, a topological order) in :mod:`npuc.ir.analysis`. Those
that want a graph library use :meth:`Graph.to_networkx`, a view built on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .dtypes import of_array
from .errors import VerifyError
from .names import Names
from .node import Node, Value
from .node_order import NodeOrder
from .types import TensorType, Type

__all__ = ["Graph", "Node", "Value", "clone_graph", "subgraphs"]


class Graph(NodeOrder):
    """A function: inputs, constants, nodes in a valid order, outputs.

    Subgraphs (the bodies of If, Loop, Scan) are Graphs too, with ``parent`` set; their
    nodes may read values of the enclosing graphs.
    """

    def __init__(self, name: str = "main", parent: "Graph | None" = None):
        self.name = name
        self.parent = parent
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.constants: dict[str, Value] = {}
        self.opset: dict[str, int] = {}
        self.meta: dict[str, Any] = {}
        NodeOrder.__init__(self)
        self._names = Names()  # used on the root graph only: one table for it and its subgraphs

    def opset_of(self, domain: str = "") -> int | None:
        """The opset version this graph (or its outermost parent) imports for a domain."""
        root = self._root()
        if domain in root.opset:
            return root.opset[domain]
        return root.opset.get("ai.onnx") if domain == "" else None

    # -- names -------------------------------------------------------------------------
    def _root(self) -> "Graph":
        g = self
        while g.parent is not None:
            g = g.parent
        return g

    def fresh_name(self, hint: str = "t") -> str:
        """A value name not yet used anywhere in this graph or its relatives."""
        return self._root()._names.fresh(hint)

    def _claim(self, value: Value) -> None:
        self._root()._names.claim(value.name)
        value.graph = self

    def release_name(self, name: str) -> None:
        """Free a name (its value left the graph) for a later value to take."""
        self._root()._names.release(name)

    def has_name(self, name: str) -> bool:
        """Whether a value anywhere in this graph or its relatives has this name."""
        return name in self._root()._names

    def rename(self, value: Value, name: str) -> bool:
        """Give ``value`` the name ``name`` when no other value has it; whether it has it
        now. A constant stays findable in ``constants`` under its new name."""
        if value.name == name:
            return True
        if not self._root()._names.move(value.name, name):
            return False
        owner = value.graph or self
        if owner.constants.get(value.name) is value:
            del owner.constants[value.name]
            owner.constants[name] = value
        value.name = name
        return True

    # -- defining values ---------------------------------------------------------------
    def add_input(self, name: str, type: Type) -> Value:
        v = Value(name, type)
        self._claim(v)
        self.inputs.append(v)
        return v

    def add_constant(self, name: str | None, array, type: TensorType | None = None) -> Value:
        """A constant tensor; a fresh name is chosen when ``name`` is None or taken."""
        array = np.asarray(array) if not isinstance(array, np.ndarray) else array
        if name is None or name in self._root()._names:
            name = self.fresh_name(name or "const")
            self.release_name(name)  # fresh_name reserved it; _claim below takes it
        v = Value(name, type or TensorType(of_array(array), array.shape), const=array)
        self._claim(v)
        self.constants[name] = v
        return v

    def remove_constant(self, value: Value) -> None:
        if value.uses:
            raise VerifyError(f"constant %{value.name} is still used")
        del self.constants[value.name]
        self.release_name(value.name)

    # -- nodes ---------------------------------------------------------------------------
    def create_node(self, op_type: str, inputs: Iterable[Value | None], outputs: Iterable,
                    attrs: dict | None = None, domain: str = "", name: str = "",
                    before: Node | None = None, after: Node | None = None) -> Node:
        """Create a node and insert it (at the end, or before/after a node).

        ``outputs`` are names or ``(name, type)`` pairs, or Values not yet in a graph;
        None marks an omitted optional output (kept so later outputs keep their position).
        """
        node = Node(op_type, domain, attrs, name)
        for v in inputs:
            node.add_input(v)
        for i, spec in enumerate(outputs):
            if spec is None:  # an omitted optional output
                node.outputs.append(None)
                continue
            if isinstance(spec, Value):
                v = spec
                v.name = self.fresh_name(v.name)
            elif isinstance(spec, tuple):
                v = Value(self.fresh_name(spec[0]), spec[1])
            else:
                v = Value(self.fresh_name(spec or "t"), None)
            v.graph = self
            v.producer, v.index = node, i
            node.outputs.append(v)
        self.insert(node, before=before, after=after)
        return node

    def remove_node(self, node: Node) -> None:
        """Delete a node whose outputs are no longer used."""
        for v in node.outputs:
            if v is None:
                continue
            if v.uses or any(o is v for o in self.outputs):
                raise VerifyError(f"cannot remove {node.describe()}: %{v.name} is still used")
        node.drop_inputs()
        self.unlink(node)
        for v in node.outputs:
            if v is not None:
                self.release_name(v.name)
        node.graph = None

    def all_graphs(self) -> Iterator["Graph"]:
        """This graph and every subgraph nested in its nodes' attributes."""
        yield self
        for node in self.nodes:
            for sub in subgraphs(node):
                yield from sub.all_graphs()

    def values(self) -> Iterator[Value]:
        yield from self.inputs
        yield from self.constants.values()
        for node in self.nodes:
            yield from (v for v in node.outputs if v is not None)

    def value(self, name: str) -> Value:
        for v in self.values():
            if v.name == name:
                return v
        raise KeyError(name)

    def node_by_name(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    # -- analyses --------------------------------------------------------------------------
    def to_networkx(self):
        """A networkx DiGraph over the nodes (edges from producer to user)."""
        import networkx as nx

        g = nx.DiGraph()
        for node in self.nodes:
            g.add_node(node)
            for v in node.inputs:
                if v is not None and v.producer is not None and v.producer.graph is self:
                    g.add_edge(v.producer, node, value=v)
        return g

    def copy(self) -> "Graph":
        """A deep copy (constant arrays are shared, they are never mutated in place)."""
        return clone_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self)} nodes>"


def subgraphs(node: Node) -> list[Graph]:
    """The graphs held in a node's attributes (If branches, Loop and Scan bodies)."""
    out = []
    for a in node.attrs.values():
        if isinstance(a, Graph):
            out.append(a)
        elif isinstance(a, list) and a and isinstance(a[0], Graph):
            out.extend(a)
    return out


def clone_graph(graph: Graph, parent: Graph | None = None, value_map=None) -> Graph:
    """A deep copy of a graph; constant arrays are shared (never mutated in place)."""
    value_map = {} if value_map is None else value_map
    g = Graph(graph.name, parent)
    g.opset = dict(graph.opset)
    g.meta = dict(graph.meta)
    for v in graph.inputs:
        nv = g.add_input(v.name, v.type)
        nv.meta = dict(v.meta)
        value_map[id(v)] = nv
    for v in graph.constants.values():
        nv = g.add_constant(v.name, v.const, v.type)
        nv.meta = dict(v.meta)
        value_map[id(v)] = nv
    for n in graph.nodes:
        attrs = {}
        for k, a in n.attrs.items():
            if isinstance(a, Graph):
                attrs[k] = clone_graph(a, g, value_map)
            elif isinstance(a, list) and a and isinstance(a[0], Graph):
                attrs[k] = [clone_graph(x, g, value_map) for x in a]
            else:
                attrs[k] = a
        outs = [None if v is None else Value(v.name, v.type) for v in n.outputs]
        nn = g.create_node(n.op_type, [None if v is None else value_map.get(id(v), v)
                                       for v in n.inputs], outs, attrs, n.domain, n.name)
        nn.meta = dict(n.meta)
        for v, nv in zip(n.outputs, nn.outputs):
            if v is None:
                continue
            nv.meta = dict(v.meta)
            value_map[id(v)] = nv
    g.outputs = [value_map.get(id(v), v) for v in graph.outputs]
    return g

"""The SSA graph: :class:`Value`, :class:`Node`, :class:`Graph`.

Each value is defined once: by a node, as a graph input, or as a constant. The IR keeps
use-def chains itself (``value.producer``, ``value.uses``), so every edit below is O(1)
in the size of the graph. Nodes are kept in a doubly linked list in a valid order
(producers before users), so inserting and removing a node never copies the list.

Analyses that want a graph library use :meth:`Graph.to_networkx`, a view built on demand.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .analysis import captured_values, reads, subgraphs, topological_order  # noqa: F401
from .dtypes import of_array
from .errors import VerifyError
from .types import TensorType, Type


class Value:
    """A tensor (or sequence) flowing through the graph.

    ``producer`` is the node that defines it (None for graph inputs and constants);
    ``uses`` lists ``(node, input_index)`` pairs; ``const`` holds the data of a constant.
    """

    __slots__ = ("name", "type", "producer", "index", "uses", "const", "graph", "meta")

    def __init__(self, name: str, type: Type | None = None, const: np.ndarray | None = None):
        self.name = name
        self.type = type
        self.producer: Node | None = None
        self.index = 0
        self.uses: list[tuple[Node, int]] = []
        self.const = const
        self.graph: Graph | None = None
        self.meta: dict[str, Any] = {}

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def shape(self):
        return getattr(self.type, "shape", None)

    @property
    def dtype(self):
        return getattr(self.type, "dtype", None)

    @property
    def users(self) -> list["Node"]:
        """The distinct nodes that read this value, in first-use order."""
        seen: dict[int, Node] = {}
        for node, _ in self.uses:
            seen.setdefault(id(node), node)
        return list(seen.values())

    def replace_all_uses_with(self, new: "Value") -> None:
        """Make every reader of this value (and the graph outputs) read ``new`` instead."""
        if new is self:
            return
        for node, i in list(self.uses):
            node.set_input(i, new)
        g = self.graph
        while g is not None:
            for k, out in enumerate(g.outputs):
                if out is self:
                    g.outputs[k] = new
            g = g.parent

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """An operation: ``outputs = domain::op_type(inputs) {attrs}``.

    ``inputs`` may contain None for an omitted optional input. ``name`` is the node's name
    in the source model, used in every message about it.
    """

    __slots__ = ("op_type", "domain", "inputs", "outputs", "attrs", "name", "graph",
                 "prev", "next", "meta")

    def __init__(self, op_type: str, domain: str = "", attrs: dict | None = None, name: str = ""):
        self.op_type = op_type
        self.domain = domain
        self.inputs: list[Value | None] = []
        self.outputs: list[Value] = []
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.name = name
        self.graph: Graph | None = None
        self.prev: Node | None = None
        self.next: Node | None = None
        self.meta: dict[str, Any] = {}

    # -- editing inputs keeps the use lists right ------------------------------------
    def set_input(self, i: int, value: Value | None) -> None:
        old = self.inputs[i]
        if old is value:
            return
        if old is not None:
            old.uses.remove((self, i))
        self.inputs[i] = value
        if value is not None:
            value.uses.append((self, i))

    def add_input(self, value: Value | None) -> None:
        self.inputs.append(None)
        self.set_input(len(self.inputs) - 1, value)

    def drop_inputs(self) -> None:
        for i in range(len(self.inputs)):
            self.set_input(i, None)
        self.inputs = []

    def input(self, i: int) -> Value | None:
        """Input ``i``, or None when it is absent."""
        return self.inputs[i] if i < len(self.inputs) else None

    @property
    def qualified_type(self) -> str:
        return f"{self.domain}::{self.op_type}" if self.domain else self.op_type

    def describe(self) -> str:
        """How messages name this node: ``Conv node '/layer1/conv1'``."""
        first = next((v for v in self.outputs if v is not None), None)
        label = self.name or (first.name if first is not None else "?")
        return f"{self.qualified_type} node '{label}'"

    def __repr__(self) -> str:
        outs = ", ".join("_" if v is None else f"%{v.name}" for v in self.outputs)
        ins = ", ".join("_" if v is None else f"%{v.name}" for v in self.inputs)
        return f"<{outs} = {self.qualified_type}({ins})>"


_NAME_TAIL = re.compile(r"^(.*?)(?:\.(\d+))?$")


class Graph:
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
        self.first: Node | None = None
        self.last: Node | None = None
        self._count = 0
        self._names: set[str] = set()
        self._counters: dict[str, itertools.count] = {}

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
        names = self._root()._names
        if hint not in names:
            names.add(hint)
            return hint
        base = _NAME_TAIL.match(hint).group(1) or "t"
        counter = self._root()._counters.setdefault(base, itertools.count(1))
        while True:
            name = f"{base}.{next(counter)}"
            if name not in names:
                names.add(name)
                return name

    def _claim(self, value: Value) -> None:
        names = self._root()._names
        if value.name in names:
            raise VerifyError(f"value name '%{value.name}' is defined twice")
        names.add(value.name)
        value.graph = self

    def release_name(self, name: str) -> None:
        self._root()._names.discard(name)

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

    def insert(self, node: Node, before: Node | None = None, after: Node | None = None) -> None:
        """Link a node into the order; the caller keeps the order valid."""
        node.graph = self
        if before is not None:
            node.prev, node.next = before.prev, before
            if before.prev is None:
                self.first = node
            else:
                before.prev.next = node
            before.prev = node
        else:
            anchor = after if after is not None else self.last
            node.prev, node.next = anchor, anchor.next if anchor else None
            if anchor is None:
                self.first = node
            else:
                anchor.next = node
            if node.next is None:
                self.last = node
            else:
                node.next.prev = node
        self._count += 1

    def unlink(self, node: Node) -> None:
        """Take a node out of the order without touching its edges."""
        if node.prev is None:
            self.first = node.next
        else:
            node.prev.next = node.next
        if node.next is None:
            self.last = node.prev
        else:
            node.next.prev = node.prev
        node.prev = node.next = None
        self._count -= 1

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

    def move_before(self, node: Node, anchor: Node) -> None:
        self.unlink(node)
        self.insert(node, before=anchor)

    @property
    def nodes(self) -> Iterator[Node]:
        """The nodes in order; safe to remove the current node while iterating."""
        node = self.first
        while node is not None:
            nxt = node.next
            yield node
            node = nxt

    def __len__(self) -> int:
        return self._count

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

    def toposort(self) -> None:
        """Reorder the nodes so that every producer comes before its users.

        Keeps the current order where it is already valid (stable). Raises VerifyError
        naming a node on a cycle when there is one.
        """
        order = topological_order(self)
        self.first = self.last = None
        self._count = 0
        for n in order:
            n.prev = n.next = None
            self.insert(n)

    def copy(self) -> "Graph":
        """A deep copy (constant arrays are shared, they are never mutated in place)."""
        from .printer import clone_graph

        return clone_graph(self)

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self)} nodes>"

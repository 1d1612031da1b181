"""Values and nodes of the SSA graph: :class:`Value` and :class:`Node`.

Each keeps its own edges: a value knows its producer and its uses, a node its inputs and
outputs, so the graph's edits (:mod:`npuc.ir.graph`) are O(1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .types import Type

if TYPE_CHECKING:
    import numpy as np

    from .graph import Graph


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

"""The order of a graph's nodes: a doubly linked list in a valid order (producers before
users), so that inserting or removing a node never copies a list. :class:`NodeOrder`
is the part of :class:`npuc.ir.graph.Graph` that keeps it; keeping the order valid is the
caller's.
"""

from __future__ import annotations

from collections.abc import Iterator

from .node import Node


class NodeOrder:
    """``first`` and ``last`` node of a linked list through ``node.prev``/``node.next``."""

    def __init__(self):
        self.first: Node | None = None
        self.last: Node | None = None
        self._count = 0

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

    def move_before(self, node: Node, anchor: Node) -> None:
        """Move ``node`` to just before ``anchor``."""
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

    def reorder(self, order: list[Node]) -> None:
        """Relink this graph's nodes in ``order`` (a permutation of them)."""
        self.first = self.last = None
        self._count = 0
        for n in order:
            n.prev = n.next = None
            self.insert(n)

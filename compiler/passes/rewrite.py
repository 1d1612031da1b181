"""The rewrite engine: rules (pattern, check, rewrite) applied with a worklist.

A rule is a small class::

    class FuseConvRelu(Rule):
        '''Conv then Relu becomes one FusedConv.'''
        pattern = "Relu(conv:Conv(x, w, b?))"

        def check(self, m):
            if m.const("w") is None:
                return "the weights are not a constant"   # the reason, for the user

        def rewrite(self, m, b):
            return b.op("FusedConv", m.x, m.w, m.b, domain="npuc", activation="Relu",
                        **m.conv.attrs)

``check`` returns None when the rule applies, else the reason it does not; the reason is
recorded in the decision log under the pass's name, once per node. ``rewrite`` builds the
replacement with a :class:`Builder` and returns the value(s) that replace the root's
outputs. A rule may instead override ``match(node)`` to match by hand.

The engine visits each node once, then only the nodes near a rewrite (the new nodes, their
users and the producers of the match's inputs), so a fixed rule set runs in time linear in
the graph. Matched nodes that nothing reads any more are deleted at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph, Node, Value
from npuc.ir.infer import infer_node
from npuc.ir.types import TensorType

from .pattern import Match, match_node, parse_pattern


class Rule:
    """A rewrite: a pattern (or a ``match`` method), a check and a replacement."""

    pattern: str | tuple[str, ...] = ""
    roots: tuple[str, ...] | None = ()  # op types a hand-written match starts at; None: any
    quiet: bool = False  # True: successes are not logged (clean-ups)

    def __init__(self):
        texts = (self.pattern,) if isinstance(self.pattern, str) else tuple(self.pattern)
        self.patterns = [parse_pattern(t) for t in texts if t]
        if self.patterns:
            self.roots = tuple(sorted({p.op for p in self.patterns}))

    @property
    def title(self) -> str:
        doc = (type(self).__doc__ or type(self).__name__).strip()
        return doc.splitlines()[0]

    def match(self, node: Node) -> Iterable[Match]:
        for p in self.patterns:
            yield from match_node(p, node)

    def check(self, m: Match) -> str | None:
        return None

    def rewrite(self, m: Match, b: "Builder") -> Value | list[Value] | None:
        raise NotImplementedError


class Builder:
    """Creates nodes just before a rewrite's root, with their output types inferred."""

    def __init__(self, graph: Graph, anchor: Node):
        self.graph = graph
        self.anchor = anchor
        self.created: list[Node] = []

    def op(self, op_type: str, *inputs: Value | None, domain: str = "", outputs: int = 1,
           name: str | None = None, out_type=None, **attrs) -> Value | list[Value]:
        """Add ``op_type(inputs) {attrs}``; returns its output (or outputs when > 1).

        ``out_type`` gives the (single) output's type when the rule knows it, which saves
        asking shape inference.
        """
        hint = (self.anchor.outputs[0].name if self.anchor.outputs[0] is not None
                else op_type.lower())
        outs = [hint] * outputs
        inputs = list(inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        if name is None:  # the first new node inherits the root's name, later ones count
            name = self.anchor.name if not self.created else \
                f"{self.anchor.name}_{len(self.created)}"
        node = self.graph.create_node(op_type, inputs, outs, attrs, domain=domain,
                                      name=name, before=self.anchor)
        self.created.append(node)
        if out_type is not None:
            node.outputs[0].type = out_type
            return node.outputs[0]
        try:
            types = infer_node(node)
        except Exception:  # a node inference cannot type keeps an unknown type
            types = [None] * outputs
        for v, t in zip(node.outputs, types):
            v.type = t
        return node.outputs[0] if outputs == 1 else list(node.outputs)

    def const(self, array, name: str | None = None) -> Value:
        """A new constant (named after the root when no name is given)."""
        hint = self.anchor.name or self.anchor.outputs[0].name
        return self.graph.add_constant(name or f"{hint}_c", np.asarray(array))

    def undo(self) -> None:
        for node in reversed(self.created):
            for v in node.outputs:
                if v is not None:
                    for user, i in list(v.uses):
                        user.set_input(i, None)
            self.graph.remove_node(node)
        self.created = []


def apply_rules(graph: Graph, rules: list[Rule], stage: str) -> int:
    """Apply rules until none matches; returns the number of rewrites."""
    by_op: dict[str, list[Rule]] = {}
    anywhere = []
    for r in rules:
        if r.roots is None:
            anywhere.append(r)
        for op in r.roots or ():
            by_op.setdefault(op, []).append(r)
    log = log_of(graph)
    refused: set[tuple[int, int]] = set()
    # Last node first: a larger pattern is rooted later than the smaller ones inside it
    # (LayerNorm's final Add after its Div), so it gets the first chance to match.
    work = deque(reversed(list(graph.nodes)))
    queued = {id(n) for n in work}
    count = 0

    def push(n):
        if n is not None and n.graph is graph and id(n) not in queued:
            queued.add(id(n))
            work.append(n)

    while work:
        node = work.popleft()
        queued.discard(id(node))
        if node.graph is not graph:
            continue
        for rule in by_op.get(node.op_type, []) + anywhere:
            touched = _try(graph, rule, node, stage, log, refused)
            if touched is not None:
                count += 1
                for n in touched:
                    push(n)
                break
    return count


def _try(graph, rule, node, stage, log, refused):
    """Rewrite at ``node`` with ``rule``; the nodes to revisit, or None if nothing done."""
    reason = None
    for m in rule.match(node):
        reason = _escapes(m) or rule.check(m)
        if reason is None:
            return _replace(graph, rule, m, stage, log)
    if reason is not None and not rule.quiet and (id(rule), id(node)) not in refused:
        refused.add((id(rule), id(node)))
        log.record(stage, node.name or node.outputs[0].name, "not rewritten",
                   f"{rule.title.rstrip('.')}: not done, {reason}")
    return None


def _escapes(m: Match) -> str | None:
    """The one-use constraint: interior nodes must be read only inside the match."""
    inside = {id(n) for n, _ in m.covered}
    for n, shared in m.covered:
        if shared:
            continue
        for v in n.outputs:
            if v is None:
                continue
            if any(o is v for o in n.graph.outputs):
                return f"%{v.name} is a graph output"
            for user, _ in v.uses:
                if id(user) not in inside:
                    return f"%{v.name} is also read by {user.describe()}"
    return None


def _replace(graph, rule, m: Match, stage, log):
    root = m.root
    b = Builder(graph, root)
    new = rule.rewrite(m, b)
    if new is None:
        b.undo()
        return None
    new = [new] if isinstance(new, Value) else list(new)
    pairs = [(old, v) for old, v in zip(root.outputs, new) if old is not None and v is not None]
    for old, v in pairs:
        problem = _type_conflict(old, v)
        if problem is None and any(o is old for o in graph.outputs) \
                and v.producer not in b.created and not _can_rename(graph, v):
            problem = f"%{old.name} is a graph output and would lose its name"
        if problem:
            b.undo()
            log.record(stage, root.name or old.name, "not rewritten",
                       f"{rule.title.rstrip('.')}: not done, {problem}")
            return None
    touched = list(b.created)
    renames = []
    for old, v in pairs:
        touched.extend(u for u, _ in old.uses)
        if v.producer in b.created:
            v.type = _better_type(old.type, v.type)
        else:
            touched.extend(u for u, _ in v.uses)
        if any(o is old for o in graph.outputs) or v.producer in b.created:
            renames.append((v, old.name))  # outputs keep their names; new values take them
        old.replace_all_uses_with(v)
    for n, _ in m.covered:  # the root first, then inward: each frees the next
        if n.graph is graph and all(v is None or (not v.uses and not any(
                o is v for o in graph.outputs)) for v in n.outputs):
            touched.extend(x.producer for x in n.inputs if x is not None)
            graph.remove_node(n)
    for v, name in renames:
        graph.rename(v, name)  # a graph output keeps its name
    if not rule.quiet:
        log.record(stage, root.name or pairs[0][0].name, "rewritten", rule.title)
    return [n for n in touched if n is not None]


def _type_conflict(old: Value, new: Value) -> str | None:
    a, b = old.type, new.type
    if not isinstance(a, TensorType) or not isinstance(b, TensorType):
        return None
    if a.dtype != b.dtype:
        return f"the result would be {b.dtype.name} instead of {a.dtype.name}"
    if a.shape is None or b.shape is None:
        return None
    if len(a.shape) != len(b.shape) or any(
            isinstance(x, int) and isinstance(y, int) and x != y for x, y in zip(a.shape, b.shape)):
        return f"the result would have shape {list(b.shape)} instead of {list(a.shape)}"
    return None


def _better_type(old, new):
    """The old type unless the new one knows more (the old keeps symbolic names)."""
    if not isinstance(new, TensorType) or new.shape is None:
        return old if old is not None else new
    if not isinstance(old, TensorType) or old.shape is None:
        return new
    return old if sum(isinstance(d, int) for d in old.shape) >= sum(
        isinstance(d, int) for d in new.shape) else new


def _can_rename(graph: Graph, v: Value) -> bool:
    return v.producer is not None and not any(o is v for o in graph.outputs)


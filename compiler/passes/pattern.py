"""A tiny pattern language for rewrite rules.

A pattern is an expression tree read from the value the match ends at::

    Relu(conv:Conv(x, w, b?))

- ``Conv(...)`` matches a value produced by a Conv node (output 0), its arguments
  matching the node's inputs in order; the node must have no further inputs.
- a lower-case name (``x``) captures a value; the same name twice must be the same value.
- ``name:Op(...)`` captures the node as well, so that a rule can read its attributes and
  a later ``name`` can refer to its output again (a diamond, as in LayerNorm).
- ``b?`` is an optional input: it matches a missing input (captured as None) or any value.
- ``_`` matches any value without capturing it.
- a number (``0.5``, ``-1``, ``3``) matches a constant whose elements all equal it.
- ``~Op(...)`` lets that node's output be read outside the match too. Without it, every
  node inside the match (the root excepted) must be read only by the match, so that the
  rewrite can delete it: this is the one-use constraint, checked with a reason.
- ``npuc::Gelu(x)`` names an operator of another domain.

Add, Mul, Max, Min, Sum, And, Or, Equal are commutative: their two arguments are tried
in both orders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from npuc.ir.graph import Node, Value

# The grammar, read by :class:`_Parser` (one token of lookahead)::
#
#     expr: call | NAME | NUMBER | "_"
#     call: [NAME ":"] ["~"] OP "(" [arg ("," arg)*] ")"
#     arg:  expr | NAME "?"
_TOKEN = re.compile(r"""\s*(?:
    (?P<op>(?:[a-z][a-z0-9_.]*::)?[A-Z][A-Za-z0-9_]*)
  | (?P<name>[a-z][a-z0-9_]*)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<punct>[():,~?_]))""", re.VERBOSE)

COMMUTATIVE = {"Add", "Mul", "Max", "Min", "Sum", "And", "Or", "Equal"}
CONST_RTOL = 1e-5


@dataclass(frozen=True)
class Call:
    op: str
    domain: str
    args: tuple
    name: str | None = None
    shared: bool = False


@dataclass(frozen=True)
class Var:
    name: str
    optional: bool = False


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Anything:
    pass


class _Parser:
    """Recursive descent over the tokens of one pattern."""

    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, offset)
        pos = 0
        while text[pos:].strip():
            m = _TOKEN.match(text, pos)
            if m is None:
                self.fail(pos + len(text[pos:]) - len(text[pos:].lstrip()), "unexpected text")
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.tokens.append(("end", "", len(text)))
        self.at = 0

    def fail(self, offset: int, what: str):
        raise ValueError(f"pattern '{self.text}': {what} at character {offset + 1}")

    def peek(self, ahead: int = 0) -> tuple[str, str, int]:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self, *texts: str) -> str:
        kind, text, offset = self.peek()
        if texts and text not in texts:
            self.fail(offset, f"expected {' or '.join(repr(t) for t in texts)}, found "
                      f"{text!r}" if text else f"expected {' or '.join(texts)}, found the end")
        self.at += 1
        return text

    def expr(self, arg: bool = False):
        kind, text, offset = self.peek()
        after = self.peek(1)[1]
        if kind == "op" or text == "~" or (kind == "name" and after == ":"):
            return self.call()
        if kind == "name":
            self.at += 1
            if arg and after == "?":
                self.at += 1
                return Var(text, optional=True)
            return Var(text)
        if kind == "number":
            self.at += 1
            return Number(float(text))
        if text == "_":
            self.at += 1
            return Anything()
        self.fail(offset, f"unexpected {text!r}" if text else "unexpected end")

    def call(self) -> Call:
        name = None
        if self.peek()[0] == "name":
            name = self.take()
            self.take(":")
        shared = self.peek()[1] == "~"
        if shared:
            self.take()
        kind, text, offset = self.peek()
        if kind != "op":
            self.fail(offset, "expected an operator (a capitalised name)")
        self.take()
        self.take("(")
        args = []
        if self.peek()[1] != ")":
            args.append(self.expr(arg=True))
            while self.peek()[1] == ",":
                self.take()
                args.append(self.expr(arg=True))
        self.take(")")
        domain, _, op_type = text.rpartition("::")
        return Call(op_type, domain, tuple(args), name, shared)


@cache
def parse_pattern(text: str) -> Call:
    """The tree of a pattern; its root must be an operator call."""
    parser = _Parser(text)
    tree = parser.expr()
    if parser.peek()[0] != "end":
        parser.fail(parser.peek()[2], f"unexpected {parser.peek()[1]!r} after the pattern")
    if not isinstance(tree, Call):
        raise ValueError(f"pattern '{text}' must start with an operator, like Relu(x)")
    return tree


@dataclass
class Match:
    """What a pattern bound: values and nodes by name, and every node it covers."""

    root: Node
    values: dict[str, Value | None] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    covered: list[tuple[Node, bool]] = field(default_factory=list)  # (node, shared)

    def __getattr__(self, name: str):
        if name in ("values", "nodes"):
            raise AttributeError(name)
        if name in self.nodes:
            return self.nodes[name]
        if name in self.values:
            return self.values[name]
        raise AttributeError(f"the pattern captured no '{name}'")

    def __getitem__(self, name: str):
        return self.__getattr__(name)

    def const(self, name: str) -> np.ndarray | None:
        """The data of a captured value when it is a constant, else None."""
        v = self.values.get(name)
        return None if v is None else v.const

    def copy(self) -> "Match":
        return Match(self.root, dict(self.values), dict(self.nodes), list(self.covered))


def match_node(pattern: Call, node: Node):
    """Every way ``pattern`` matches with ``node`` as its root (a generator of Match)."""
    if node.op_type != pattern.op or node.domain != pattern.domain:
        return
    yield from _call(pattern, node, Match(node), root=True)


def _call(p: Call, node: Node, m: Match, root: bool = False):
    if node.op_type != p.op or node.domain != p.domain:
        return
    if p.name is not None:
        seen = m.nodes.get(p.name)
        if seen is not None and seen is not node:
            return
        m.nodes[p.name] = node
        m.values.setdefault(p.name, node.outputs[0])
    m.covered.append((node, p.shared or root))
    inputs = list(node.inputs)
    while inputs and inputs[-1] is None:
        inputs.pop()
    if len(inputs) > len(p.args):
        return
    inputs += [None] * (len(p.args) - len(inputs))
    orders = [p.args]
    if p.op in COMMUTATIVE and len(p.args) == 2:
        orders.append((p.args[1], p.args[0]))
    for args in orders:
        yield from _args(args, inputs, 0, m.copy())


def _args(args, inputs, i, m: Match):
    if i == len(args):
        yield m
        return
    for m2 in _value(args[i], inputs[i], m):
        yield from _args(args, inputs, i + 1, m2.copy())


def _value(p, v: Value | None, m: Match):
    if isinstance(p, Var):
        if v is None and not p.optional:
            return
        if p.name in m.values:
            if m.values[p.name] is v:
                yield m
            return
        m.values[p.name] = v
        yield m
    elif v is None:
        return
    elif isinstance(p, Anything):
        yield m
    elif isinstance(p, Number):
        c = v.const
        if c is not None and c.size >= 1 and c.dtype.kind in "fiu" and np.allclose(
                c, p.value, rtol=CONST_RTOL, atol=0):
            yield m
    elif isinstance(p, Call):
        node = v.producer
        if node is None or v.index != 0 or node.graph is None:
            return
        yield from _call(p, node, m)

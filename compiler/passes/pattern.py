"""A tiny pattern language for rewrite rules, read by a small recursive-descent parser.

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

# The language, in lark's notation (``tests/passes/test_pattern_parser.py`` parses every
# pattern with lark from this grammar too, and compares). It is read by hand below: lark's
# import and its building of this parser cost every compile more than its patterns do.
GRAMMAR = r"""
?start: expr
?expr: call | leaf
call: [NAME ":"] [SHARED] OP "(" [arg ("," arg)*] ")"
?arg: expr | NAME "?" -> optional
?leaf: NAME -> var
     | NUMBER -> number
     | "_" -> anything
OP: /([a-z][a-z0-9_.]*::)?[A-Z][A-Za-z0-9_]*/
NAME: /[a-z][a-z0-9_]*/
SHARED: "~"
NUMBER: /-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/
%import common.WS
%ignore WS
"""

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


# One token at a time, in the order the grammar's terminals can be told apart: an
# operator (upper case, or a domain and ``::``) before a name, a number, punctuation.
_TOKEN = re.compile(r"""
    (?P<ws>[ \t\f\r\n]+)
  | (?P<op>(?:[a-z][a-z0-9_.]*::)?[A-Z][A-Za-z0-9_]*)
  | (?P<name>[a-z][a-z0-9_]*)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<punct>[():,?~_])
""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """``(kind, text, column)`` of each token, then ``("end", "", len(text))``."""
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"pattern '{text}': unexpected character {text[pos]!r} at "
                             f"column {pos + 1}")
        if m.lastgroup != "ws":
            kind = m.lastgroup if m.lastgroup != "punct" else m.group()
            out.append((kind, m.group(), pos))
        pos = m.end()
    out.append(("end", "", len(text)))
    return out


class _Reader:
    """The grammar above, by recursive descent over :func:`_tokens`."""

    def __init__(self, text: str):
        self.text, self.tokens, self.i = text, _tokens(text), 0

    def peek(self, ahead: int = 0) -> str:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)][0]

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            _, got, column = self.tokens[self.i]
            raise ValueError(f"pattern '{self.text}': expected {kind!r} at column "
                             f"{column + 1}, found {got or 'the end'!r}")
        self.i += 1
        return self.tokens[self.i - 1][1]

    def expr(self):
        kind = self.peek()
        if kind in ("op", "~") or (kind == "name" and self.peek(1) == ":"):
            return self.call()
        if kind == "name":
            return Var(self.take("name"))
        if kind == "number":
            return Number(float(self.take("number")))
        if kind != "_":
            _, got, column = self.tokens[self.i]
            raise ValueError(f"pattern '{self.text}': expected an operator, a name, a "
                             f"number or _ at column {column + 1}, found {got or 'the end'!r}")
        self.take("_")
        return Anything()

    def call(self) -> Call:
        name = None
        if self.peek() == "name":
            name = self.take("name")
            self.take(":")
        shared = self.peek() == "~"
        if shared:
            self.take("~")
        domain, _, op_type = self.take("op").rpartition("::")
        self.take("(")
        args = []
        if self.peek() != ")":
            args.append(self.arg())
            while self.peek() == ",":
                self.take(",")
                args.append(self.arg())
        self.take(")")
        return Call(op_type, domain, tuple(args), name, shared)

    def arg(self):
        if self.peek() == "name" and self.peek(1) == "?":
            name = self.take("name")
            self.take("?")
            return Var(name, optional=True)
        return self.expr()


@cache
def parse_pattern(text: str) -> Call:
    """The tree of a pattern; its root must be an operator call. A pattern that does not
    follow the grammar raises ValueError naming the column."""
    reader = _Reader(text)
    tree = reader.expr()
    reader.take("end")
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

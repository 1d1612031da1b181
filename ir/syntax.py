"""The text format's syntax: ``grammar.lark`` parsed by lark (LALR) into plain tuples.

:class:`Syntax` turns the parse tree into tuples (names are not resolved yet); the
builder in ``parser.py`` turns those into a Graph.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache

import numpy as np
from lark import Lark, Transformer, v_args

from .dtypes import BY_NAME
from .types import OptionalType, QuantParams, SequenceType, TensorType

HOLE = object()  # an omitted optional input or output, spelled "_"


def _unquote(text: str) -> str:
    return json.loads(text) if text.startswith('"') else text


class Syntax(Transformer):
    """Turns the parse tree into plain tuples; names are resolved later by the builder."""

    def INT(self, t):
        return int(t)

    def FLOAT(self, t):
        return float(t)

    def STRING(self, t):
        return json.loads(t)

    def VALUE(self, t):
        return ("value", _unquote(t[1:]), t.line, t.column)

    def NODE_NAME(self, t):
        return _unquote(t[1:])

    def HOLE(self, t):
        return HOLE

    def DOTTED(self, t):
        return str(t)

    int = float = string = v_args(inline=True)(lambda self, x: x)

    def true(self, _):
        return True

    def false(self, _):
        return False

    def nan(self, _):
        return float("nan")

    def inf(self, _):
        return float("inf")

    def neg_inf(self, _):
        return float("-inf")

    def start(self, items):
        return items

    def header(self, items):
        return ("header", items[0], items[1] if len(items) > 1 else None)

    def opset(self, items):
        return ("opset", dict(items))

    @v_args(inline=True)
    def opset_item(self, domain, version):
        return ("" if domain == "ai.onnx" else domain, version)

    @v_args(inline=True)
    def graph(self, name, params, body, rets):
        return ("graph", name, params, body, rets)

    def params(self, items):
        return [i for i in items if i is not None]

    body = params
    rets = params

    @v_args(inline=True)
    def param(self, value, type_):
        return ("param", value, type_)

    @v_args(inline=True)
    def const(self, value, type_, data):
        return ("const", value, type_, data)

    @v_args(inline=True)
    def node(self, outs, op, args, attrs, types, name):
        return ("node", outs, op[0], op[1], args, attrs or {}, types, name or "", op[2])

    def outs(self, items):
        return [None if i is HOLE else i for i in items]

    def args(self, items):
        if items == [None]:
            return []
        return [None if i is HOLE else i for i in items]

    def types(self, items):
        return list(items)

    def op(self, items):
        tok = items[-1]
        domain = items[0] if len(items) == 2 else ""
        return (domain, tok, getattr(tok, "line", 0))

    def attrs(self, items):
        return dict(i for i in items if i is not None)

    @v_args(inline=True)
    def attr(self, name, value):
        return (name, value)

    def attr_list(self, items):
        return [i for i in items if i is not None] if items != [None] else []

    @v_args(inline=True)
    def attr_tensor(self, type_, data):
        return ("tensor", type_, data)

    @v_args(inline=True)
    def attr_type(self, type_):
        return ("type", type_)

    def tensor_type(self, items):
        name, shape = items[0], items[1]
        quant = items[2] if len(items) > 2 else None
        if name not in BY_NAME:
            raise ValueError(f"{getattr(name, 'line', '?')}:{getattr(name, 'column', '?')}: "
                             f"unknown element type '{name}' (known: {', '.join(BY_NAME)})")
        return TensorType(BY_NAME[name], shape, quant)

    def unranked(self, _):
        return None

    def shape(self, items):
        return tuple(items) if items != [None] else ()

    def unknown_dim(self, _):
        return None

    def seq_type(self, items):
        return SequenceType(items[0])

    def opt_type(self, items):
        return OptionalType(items[0])

    def unknown_type(self, _):
        return None

    def quant(self, items):
        fields = dict(items)
        scale = np.asarray(fields.get("scale", 1.0), dtype=np.float32)
        zp_dt, zp = fields.get("zero_point", ("i8", 0))
        return QuantParams(scale, np.asarray(zp, dtype=BY_NAME[zp_dt].numpy), fields.get("axis"))

    def qparam(self, items):
        key = items[0]
        if key == "zero_point":
            dt = items[1] if len(items) > 2 or isinstance(items[1], str) else "i8"
            vals = items[2:] if isinstance(items[1], str) else items[1:]
            return (key, (dt, vals[0] if len(vals) == 1 and key != "scale" and False else
                          (vals if len(vals) != 1 else vals[0])))
        vals = items[1:]
        if key == "axis":
            return (key, vals[0])
        return (key, vals if len(vals) != 1 else vals[0])

    def data_scalar(self, items):
        return ("scalar", items[0])

    def data_list(self, items):
        return ("list", [] if items == [None] else items)

    @v_args(inline=True)
    def data_blob(self, offset, nbytes):
        return ("blob", offset, nbytes)

    def data_hex(self, items):
        return ("hex", bytes.fromhex(str(items[0])[4:-1]))


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    path = os.path.join(os.path.dirname(__file__), "grammar.lark")
    with open(path, encoding="utf-8") as f:
        return Lark(f.read(), parser="lalr", maybe_placeholders=True, propagate_positions=False)

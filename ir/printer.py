"""The text format, printing side: ``npuir`` version 1.

    npuir 1
    opset ai.onnx=17
    graph main(%x: f32[batch,3,8,8]) {
      const %w: f32[4,3,3,3] = blob(0, 432)
      const %axes: i64[1] = [1]
      %y = Conv(%x, %w) {pads = [1, 1, 1, 1]} : f32[batch,4,8,8] @"/conv/Conv"
      return %y
    }

Names are bare when they are simple (letters, digits, ``_ . : / -``), else quoted.
Constants of more than ``inline_limit`` elements go to a side file (``blob(offset,
nbytes)``), or, with no side file, to an exact hex literal. Attributes print sorted by
name. Every number prints in the shortest form that reads back to the same bits, so
print(parse(text)) == text, byte for byte (see ``parser.py`` and ``grammar.lark``).
"""

from __future__ import annotations

import json
import re

import numpy as np

from .dtypes import DType
from .graph import Graph, Node, Value
from .types import OptionalType, QuantParams, SequenceType, TensorType

VERSION = 1
BLOB_ALIGN = 64
_SIMPLE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.:/\-]*[A-Za-z0-9_])?$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = {"true", "false", "nan", "inf", "blob", "graph", "return", "const", "opset",
             "tensor", "type", "seq", "opt", "npuir", "blobs"}


def quote_name(name: str) -> str:
    """A value or node name: bare when simple, else a JSON string."""
    return name if _SIMPLE.match(name) else json.dumps(name)


def quote_ident(name: str) -> str:
    """A graph, attribute or dimension name: bare when an identifier, else a JSON string."""
    return name if _IDENT.match(name) and name not in _KEYWORDS else json.dumps(name)


def _dim(d) -> str:
    if d is None:
        return "?"
    if isinstance(d, int):
        return str(d)
    return quote_ident(d)


def format_type(t) -> str:
    """The text spelling of a type: ``f32[1,3,N,?]``, ``i8[*]``, ``seq<f32[?]>``, ``?``."""
    if t is None:
        return "?"
    if isinstance(t, SequenceType):
        return f"seq<{format_type(t.elem)}>"
    if isinstance(t, OptionalType):
        return f"opt<{format_type(t.elem)}>"
    shape = "[*]" if t.shape is None else "[" + ",".join(_dim(d) for d in t.shape) + "]"
    text = f"{t.dtype.name}{shape}"
    if t.quant is not None:
        text += _format_quant(t.quant)
    return text


def _format_quant(q: QuantParams) -> str:
    parts = []
    if q.axis is not None:
        parts.append(f"axis={q.axis}")
    parts.append("scale=" + _small_array(q.scale, "f32"))
    zp_dt = _dtype_name(q.zero_point.dtype)
    parts.append(f"zero_point={zp_dt}:" + _small_array(q.zero_point, zp_dt))
    return "{" + ", ".join(parts) + "}"


def _dtype_name(np_dtype) -> str:
    from .dtypes import dtype

    return dtype(np_dtype).name


def _small_array(a: np.ndarray, dt_name: str) -> str:
    if a.ndim == 0:
        return format_scalar(a.item() if dt_name != "bf16" else a, dt_name)
    return "[" + ", ".join(format_scalar(x, dt_name) for x in a.reshape(-1)) + "]"


def format_float(x: float, dt_name: str = "f32") -> str:
    """Shortest text that reads back to the same value at ``dt_name`` precision."""
    x = float(x)
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    if dt_name == "f64":
        text = repr(x)
    elif dt_name == "f16":
        text = str(np.float16(x))
    else:
        text = str(np.float32(x))
    if not any(c in text for c in ".en"):
        text += ".0"
    return text


def format_scalar(x, dt_name: str) -> str:
    if dt_name == "str":
        return json.dumps(x if isinstance(x, str) else x.decode("utf-8", "replace"))
    if dt_name == "bool":
        return "true" if bool(x) else "false"
    if dt_name.startswith(("f", "bf")):
        return format_float(float(np.float32(x)) if dt_name not in ("f64",) else float(x),
                            dt_name)
    if dt_name.startswith("c"):
        return json.dumps(repr(complex(x)))
    return str(int(x))


class Printer:
    """Prints a graph; large constants go to ``blob`` (a bytearray) when one is given."""

    def __init__(self, blob: bytearray | None = None, inline_limit: int = 16):
        self.blob = blob
        self.inline_limit = inline_limit
        self.lines: list[str] = []

    def module(self, graph: Graph, blob_name: str | None = None) -> str:
        head = f"npuir {VERSION}"
        if blob_name:
            head += f" blobs {json.dumps(blob_name)}"
        self.lines.append(head)
        if graph.opset:
            items = sorted(graph.opset.items())
            self.lines.append("opset " + ", ".join(
                f"{d or 'ai.onnx'}={v}" for d, v in items))
        self.graph(graph, "")
        return "\n".join(self.lines) + "\n"

    def graph(self, graph: Graph, indent: str, head: str = "graph ") -> None:
        args = ", ".join(f"%{quote_name(v.name)}: {format_type(v.type)}" for v in graph.inputs)
        self.lines.append(f"{indent}{head}{quote_ident(graph.name)}({args}) {{")
        inner = indent + "  "
        for v in graph.constants.values():
            self.lines.append(f"{inner}const %{quote_name(v.name)}: {format_type(v.type)} = "
                              f"{self.data(v.const, v.type.dtype)}")
        for node in graph.nodes:
            self.node(node, inner)
        outs = ", ".join(f"%{quote_name(v.name)}" for v in graph.outputs)
        self.lines.append(f"{inner}return {outs}".rstrip())
        self.lines.append(f"{indent}}}")

    def node(self, node: Node, indent: str) -> None:
        outs = ", ".join("_" if v is None else f"%{quote_name(v.name)}" for v in node.outputs)
        ins = ", ".join("_" if v is None else f"%{quote_name(v.name)}" for v in node.inputs)
        op = node.op_type if _IDENT.match(node.op_type) else json.dumps(node.op_type)
        if node.domain:
            op = f"{node.domain}::{op}"
        text = f"{indent}{outs} = {op}({ins})"
        if node.attrs:
            parts = [f"{quote_ident(k)} = {self.attr(node.attrs[k], indent)}"
                     for k in sorted(node.attrs)]
            text += " {" + ", ".join(parts) + "}"
        text += " : " + ", ".join("?" if v is None else format_type(v.type)
                                  for v in node.outputs)
        if node.name:
            text += f" @{quote_name(node.name)}"
        self.lines.append(text)

    def attr(self, a, indent: str = "") -> str:
        if isinstance(a, Graph):
            sub = Printer(self.blob, self.inline_limit)
            sub.graph(a, indent, head="graph ")
            return "\n".join(sub.lines).lstrip()
        if isinstance(a, bool):
            return str(int(a))
        if isinstance(a, (int, np.integer)):
            return str(int(a))
        if isinstance(a, (float, np.floating)):
            return format_float(a)
        if isinstance(a, str):
            return json.dumps(a)
        if isinstance(a, bytes):
            return json.dumps(a.decode("utf-8", "replace"))
        if isinstance(a, np.ndarray):
            from .dtypes import of_array

            dt = of_array(a)
            shape = ",".join(str(d) for d in a.shape)
            return f"tensor<{dt.name}[{shape}]> {self.data(a, dt)}"
        if isinstance(a, (TensorType, SequenceType, OptionalType)):
            return f"type<{format_type(a)}>"
        if isinstance(a, (list, tuple)):
            return "[" + ", ".join(self.attr(x, indent) for x in a) + "]"
        raise TypeError(f"cannot print attribute value {a!r}")

    def data(self, array: np.ndarray, dt: DType) -> str:
        """A constant's payload: inline list, side-file blob, or hex."""
        array = np.asarray(array)
        if array.size <= self.inline_limit or dt.kind == "string":
            if array.ndim == 0:
                return format_scalar(array.item() if dt.kind in ("string",) else array[()],
                                     dt.name)
            return "[" + ", ".join(format_scalar(x, dt.name) for x in array.reshape(-1)) + "]"
        raw = np.ascontiguousarray(array, dtype=dt.numpy).tobytes()
        if self.blob is None:
            return f'hex"{raw.hex()}"'
        pad = (-len(self.blob)) % BLOB_ALIGN
        self.blob.extend(b"\0" * pad)
        offset = len(self.blob)
        self.blob.extend(raw)
        return f"blob({offset}, {len(raw)})"


def print_graph(graph: Graph, blob: bytearray | None = None, blob_name: str | None = None,
                inline_limit: int = 16) -> str:
    """The text of a graph. Pass a bytearray as ``blob`` to keep large constants beside it."""
    return Printer(blob, inline_limit).module(graph, blob_name if blob is not None else None)


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

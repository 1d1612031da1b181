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

import numpy as np

from .dtypes import DType
from .graph import Graph, Node
from .spelling import IDENT, format_float, format_scalar, quote_ident, quote_name
from .types import OptionalType, SequenceType, TensorType, format_type

VERSION = 1
BLOB_ALIGN = 64


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
        op = node.op_type if IDENT.match(node.op_type) else json.dumps(node.op_type)
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

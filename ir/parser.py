"""The text format, reading side: ``grammar.lark`` parsed with lark (LALR), then built.

``parse_text`` returns a :class:`Graph`; ``load_text`` also reads the side file of large
constants, which must lie in the text file's own folder. Every syntax or meaning error is
a :class:`ParseError` with ``file:line:column``.
"""

from __future__ import annotations

import json
import os

import numpy as np
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .errors import ParseError
from .graph import Graph, Value
from .printer import VERSION
from .syntax import Syntax, lark_parser
from .types import TensorType


class _Builder:
    def __init__(self, where: str, blob: bytes | None):
        self.where = where
        self.blob = blob

    def fail(self, line, msg):
        raise ParseError(f"{self.where}:{line}: {msg}")

    def graph(self, tree, parent: Graph | None, scope: dict) -> Graph:
        _, name, params, stmts, rets = tree
        g = Graph(name, parent)
        local = dict(scope)
        for _, (_, vname, line, _col), t in params:
            self.define(g, local, vname, line)
            v = g.add_input(vname, t)
            local[vname] = v
        for stmt in stmts:
            if stmt[0] == "const":
                _, (_, vname, line, _), t, data = stmt
                self.define(g, local, vname, line)
                arr = self.array(data, t, line)
                local[vname] = g.add_constant(vname, arr, t)
            else:
                self.node(g, local, stmt)
        outs = []
        for _, vname, line, _ in rets:
            if vname not in local:
                self.fail(line, f"return of undefined value %{vname}")
            outs.append(local[vname])
        g.outputs = outs
        return g

    def define(self, g, local, vname, line):
        if vname in local and local[vname].graph is not None and _same_root(local[vname].graph, g):
            self.fail(line, f"value %{vname} is defined twice")

    def node(self, g: Graph, local: dict, stmt) -> None:
        _, outs, domain, op_type, inputs, attrs, types, name, line = stmt
        ins = []
        for item in inputs:
            if item is None:
                ins.append(None)
                continue
            _, vname, vline, vcol = item
            if vname not in local:
                self.fail(f"{vline}:{vcol}", f"use of undefined value %{vname}")
            ins.append(local[vname])
        if len(types) != len(outs):
            self.fail(line, f"{op_type} has {len(outs)} results but {len(types)} types")
        built_attrs = {k: self.attr(v, g, local, line) for k, v in attrs.items()}
        out_specs = []
        for o in outs:
            if o is None:
                out_specs.append(None)
            else:
                self.define(g, local, o[1], o[2])
                out_specs.append(o[1])
        specs = [None if o is None else Value(o, t) for o, t in zip(out_specs, types)]
        node = g.create_node(op_type, ins, specs, built_attrs, domain, name)
        for v, o in zip(node.outputs, out_specs):
            if o is None:
                continue
            if v.name != o:
                self.fail(line, f"value %{o} is defined twice")
            local[o] = v

    def attr(self, v, g, local, line):
        if isinstance(v, tuple) and v and v[0] == "graph":
            return self.graph(v, g, local)
        if isinstance(v, tuple) and v and v[0] == "tensor":
            return self.array(v[2], v[1], line)
        if isinstance(v, tuple) and v and v[0] == "type":
            return v[1]
        if isinstance(v, list):
            return [self.attr(x, g, local, line) for x in v]
        return v

    def array(self, data, t: TensorType, line) -> np.ndarray:
        if not isinstance(t, TensorType) or t.shape is None or not t.is_static:
            self.fail(line, "a constant needs a tensor type with a known shape")
        dt = t.dtype
        kind = data[0]
        if kind in ("blob", "hex"):
            if kind == "blob":
                if self.blob is None:
                    self.fail(line, "blob() used but no side file was given")
                off, n = data[1], data[2]
                if off < 0 or off + n > len(self.blob):
                    self.fail(line, f"blob({off}, {n}) lies outside the side file "
                                    f"({len(self.blob)} bytes)")
                raw = self.blob[off:off + n]
            else:
                raw = data[1]
            if len(raw) != t.numel * dt.itemsize:
                self.fail(line, f"constant data has {len(raw)} bytes, its type needs "
                                f"{t.numel * dt.itemsize}")
            return np.frombuffer(raw, dtype=dt.numpy).reshape(t.shape).copy()
        values = [data[1]] if kind == "scalar" else data[1]
        if len(values) != t.numel:
            self.fail(line, f"constant has {len(values)} values, its type f{list(t.shape)} "
                            f"needs {t.numel}")
        if dt.kind == "string":
            arr = np.array(values, dtype=object)
        elif dt.kind == "complex":
            arr = np.array([complex(x) for x in values], dtype=dt.numpy)
        elif dt.kind in ("float",):
            arr = np.array(values, dtype=np.float64).astype(dt.numpy)
        else:
            arr = np.array(values, dtype=np.int64 if dt.kind != "uint" else np.uint64) \
                .astype(dt.numpy)
        return arr.reshape(t.shape)


def _same_root(a: Graph, b: Graph) -> bool:
    return a._root() is b._root()


def parse_text(text: str, where: str = "<text>", blob: bytes | None = None) -> Graph:
    """Parse npuir text into a Graph. ``blob`` is the content of the side file, if any."""
    try:
        tree = lark_parser().parse(text)
        header, *rest = Syntax().transform(tree)
    except UnexpectedInput as e:
        raise ParseError(f"{where}:{e.line}:{e.column}: {_describe(e)}") from None
    except Exception as e:  # a transformer error: bad dtype, bad number
        inner = getattr(e, "orig_exc", e)
        raise ParseError(f"{where}:{inner}") from None
    _, version, _blob_name = header
    if version != VERSION:
        raise ParseError(f"{where}:1: npuir version {version} is not supported "
                         f"(this npuc reads version {VERSION})")
    opset = {}
    if rest and rest[0][0] == "opset":
        opset = rest.pop(0)[1]
    g = _Builder(where, blob).graph(rest[0], None, {})
    g.opset = opset
    return g


def _describe(e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedEOF):
        return "unexpected end of file"
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            return "unexpected end of file"
        expected = sorted(x for x in e.expected if not x.startswith("_"))[:6]
        return f"unexpected {tok!s:.30} (expected {', '.join(expected)})"
    if isinstance(e, UnexpectedCharacters):
        return f"unexpected character {e.char!r}"
    return str(e).splitlines()[0]


def blob_name_of(text: str) -> str | None:
    """The side-file name the header of a text names, if any (no full parse)."""
    first = text.lstrip().split("\n", 1)[0]
    if " blobs " in first:
        return json.loads(first.split(" blobs ", 1)[1].strip())
    return None


def load_text(path: str) -> Graph:
    """Read a ``.npuir`` file and its side file of constants."""
    from .errors import NpucError

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise ParseError(f"{path}: not a text IR file (it is not UTF-8 text)") from None
    except OSError as e:
        raise NpucError(f"{path}: cannot read: {e.strerror}") from None
    blob = None
    try:
        name = blob_name_of(text)
    except ValueError:  # json's error: the header's side-file name is not a JSON string
        name = 0
    if name is not None and not isinstance(name, str):
        raise ParseError(f"{path}:1: the header must name its side file as a quoted string "
                         "(blobs \"NAME.bin\")")
    if name is not None:
        folder = os.path.dirname(os.path.abspath(path))
        blob_path = os.path.realpath(os.path.join(folder, name))
        if os.path.dirname(blob_path) != os.path.realpath(folder):
            raise ParseError(f"{path}:1: side file '{name}' must be in the same folder")
        from .safeio import check_input_file

        try:
            check_input_file(blob_path)
        except NpucError as e:
            raise ParseError(f"{path}:1: side file {e}") from None
        try:
            with open(blob_path, "rb") as f:
                blob = f.read()
        except OSError as e:
            raise ParseError(f"{path}:1: cannot read side file '{name}': {e.strerror}") from None
    return parse_text(text, path, blob)


def save_text(graph: Graph, path: str, inline_limit: int = 16) -> None:
    """Write ``graph`` to ``path`` and its large constants to ``path + '.bin'``."""
    from .printer import print_graph

    blob = bytearray()
    blob_name = os.path.basename(path) + ".bin"
    text = print_graph(graph, blob, blob_name, inline_limit)
    if not blob:
        text = print_graph(graph, None, None, inline_limit)
    from .safeio import check_output_file, write_file

    check_output_file(path)
    if blob:  # the side file first: the text, written last, is what makes the pair new
        write_file(path + ".bin", bytes(blob))
    write_file(path, text.encode("utf-8"))

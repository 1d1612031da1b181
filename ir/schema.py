"""Operator schemas as data: inputs, outputs, attributes with their types and defaults.

ONNX operators take their schema from ``onnx.defs`` (the reference the whole ecosystem
shares), at the opset version the graph imports. npuc's own operators (the fused and
quantized forms the compiler creates, domain ``npuc``) are declared with
:func:`register_op` next to the pass that creates them, with a shape-inference function.
One registry serves the importer, the verifier, the printer and the executor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import onnx
import onnx.defs

# Attribute types, spelled as in onnx.AttributeProto.
INT, FLOAT, STRING, TENSOR, GRAPH = "int", "float", "string", "tensor", "graph"
INTS, FLOATS, STRINGS, TENSORS, GRAPHS = "ints", "floats", "strings", "tensors", "graphs"
TYPE_PROTO, TYPE_PROTOS, SPARSE_TENSOR = "type_proto", "type_protos", "sparse_tensor"

_ATTR_TYPE_NAMES = {
    onnx.AttributeProto.INT: INT, onnx.AttributeProto.FLOAT: FLOAT,
    onnx.AttributeProto.STRING: STRING, onnx.AttributeProto.TENSOR: TENSOR,
    onnx.AttributeProto.GRAPH: GRAPH, onnx.AttributeProto.INTS: INTS,
    onnx.AttributeProto.FLOATS: FLOATS, onnx.AttributeProto.STRINGS: STRINGS,
    onnx.AttributeProto.TENSORS: TENSORS, onnx.AttributeProto.GRAPHS: GRAPHS,
    onnx.AttributeProto.TYPE_PROTO: TYPE_PROTO, onnx.AttributeProto.TYPE_PROTOS: TYPE_PROTOS,
    onnx.AttributeProto.SPARSE_TENSOR: SPARSE_TENSOR,
}


@dataclass(frozen=True)
class AttrSpec:
    """An attribute: its type name (``int``, ``floats``, ...), default, and whether required."""

    name: str
    type: str
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class OpSchema:
    """What an operator takes and gives."""

    op_type: str
    domain: str
    since_version: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    min_inputs: int
    max_inputs: int
    min_outputs: int
    max_outputs: int
    attrs: dict[str, AttrSpec] = field(default_factory=dict)
    infer: Callable | None = None  # infer(node) -> list of output types, for npuc ops
    doc: str = ""

    def default(self, attr: str):
        spec = self.attrs.get(attr)
        return None if spec is None else spec.default


# npuc's own operators, registered by the modules that introduce them.
_CUSTOM: dict[tuple[str, str], OpSchema] = {}

NPUC_DOMAIN = "npuc"


def register_op(op_type: str, domain: str = NPUC_DOMAIN, *, inputs=(), outputs=("Y",),
                optional_inputs: int = 0, variadic: bool = False, attrs=None,
                infer: Callable | None = None, doc: str = "", num_outputs=None,
                optional_attrs=()) -> OpSchema:
    """Declare an npuc operator.

    ``inputs`` names the inputs; the last ``optional_inputs`` of them may be omitted;
    ``variadic`` lets the last one repeat. ``attrs`` maps a name to ``(type, default)``
    (a default of ``None`` makes it required, unless the name is in ``optional_attrs``).
    ``infer(node)`` returns output types.
    """
    specs = {}
    for name, (atype, default) in (attrs or {}).items():
        specs[name] = AttrSpec(name, atype, default,
                               default is None and name not in optional_attrs)
    n = len(inputs)
    lo_out, hi_out = (len(outputs), len(outputs)) if num_outputs is None else num_outputs
    schema = OpSchema(op_type, domain, 1, tuple(inputs), tuple(outputs),
                      n - optional_inputs, 2**31 - 1 if variadic else n,
                      lo_out, hi_out, specs, infer, doc)
    _CUSTOM[(domain, op_type)] = schema
    return schema


def base_op(node) -> str:
    """The operator a node computes at heart: ``Conv`` for ``npuc::FusedConv`` (the
    optimizer's naming, ``Fused<Op>`` is <Op> with an epilogue) and ``npuc::QConv`` (the
    quantizer's, ``Q<Op>`` is its int8 form), ``MatMul`` and ``Conv`` for ONNX's integer
    products ``MatMulInteger`` and ``ConvInteger``, else its own op type."""
    op = node.op_type
    if node.domain in ("", "ai.onnx") and op in ("MatMulInteger", "ConvInteger"):
        return op[:-len("Integer")]
    if node.domain == NPUC_DOMAIN:
        for prefix in ("Fused", "Q"):
            if op.startswith(prefix) and op[len(prefix):]:
                return op[len(prefix):]
    return op


def custom_ops() -> dict[tuple[str, str], OpSchema]:
    return dict(_CUSTOM)


@cache
def _onnx_schema(op_type: str, domain: str, opset: int) -> OpSchema | None:
    try:
        s = onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None
    attrs = {}
    for name, a in s.attributes.items():
        default = None
        if a.default_value is not None and a.default_value.type != 0:
            default = onnx.helper.get_attribute_value(a.default_value)
            if isinstance(default, bytes):
                default = default.decode()
            elif isinstance(default, list) and default and isinstance(default[0], bytes):
                default = [x.decode() for x in default]
        attrs[name] = AttrSpec(name, _ATTR_TYPE_NAMES.get(a.type, "unknown"), default,
                               bool(a.required))
    return OpSchema(s.name, domain, s.since_version, tuple(i.name for i in s.inputs),
                    tuple(o.name for o in s.outputs), s.min_input, s.max_input,
                    s.min_output, s.max_output, attrs, None, s.doc or "")


def get_schema(op_type: str, domain: str = "", opset: int | None = None) -> OpSchema | None:
    """The schema of an operator at an opset version (the newest when None), or None."""
    if domain in ("ai.onnx",):
        domain = ""
    custom = _CUSTOM.get((domain, op_type))
    if custom is not None:
        return custom
    if opset is None:
        opset = latest_opset(domain)
    return _onnx_schema(op_type, domain, opset)


@cache
def latest_opset(domain: str = "") -> int:
    """The newest opset of a domain that the installed onnx knows."""
    if domain in ("", "ai.onnx"):
        return onnx.defs.onnx_opset_version()
    versions = [s.since_version for s in onnx.defs.get_all_schemas_with_history()
                if s.domain == domain]
    return max(versions) if versions else 1


def attr_or_default(node, name: str, opset: int | None = None):
    """A node's attribute, or the schema default when the node does not set it."""
    if name in node.attrs:
        return node.attrs[name]
    graph_opset = opset
    if graph_opset is None and node.graph is not None:
        graph_opset = node.graph.opset_of(node.domain)
    schema = get_schema(node.op_type, node.domain, graph_opset)
    return None if schema is None else schema.default(name)

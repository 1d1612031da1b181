"""Conversion between ONNX protos and npuc graphs, in memory (no files).

File handling, checks and shape inference live in ``npuc.compiler.frontend``; this module
is the one place that knows how a ``GraphProto`` maps onto the IR and back.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import AttributeProto, helper

from .analysis import toposort
from .errors import ModelError, NpucError
from .graph import Graph, Node, Value
from .onnx_types import array_from_proto, array_to_proto, type_from_proto, type_to_proto
from .schema import get_schema
from .types import OptionalType, SequenceType, TensorType


# -- ONNX -> IR ------------------------------------------------------------------------
def graph_from_proto(gp: onnx.GraphProto, opset: dict[str, int], parent: Graph | None = None,
                     scope: dict[str, Value] | None = None,
                     load_tensor=array_from_proto) -> Graph:
    """Build a Graph from a GraphProto; ``scope`` maps names visible from outer graphs."""
    g = Graph(gp.name or "main", parent)
    if parent is None:
        g.opset = dict(opset)
    local: dict[str, Value] = dict(scope or {})
    types = {vi.name: vi.type for vi in list(gp.value_info) + list(gp.output)}
    init_names = {t.name for t in gp.initializer} | {t.values.name for t in gp.sparse_initializer}

    def claim_name(name):  # a free name for a value added below
        if not g.has_name(name):
            return name
        fresh = g.fresh_name(name)
        g.release_name(fresh)  # fresh_name reserved it; adding the value takes it
        return fresh

    for vi in gp.input:
        if vi.name in init_names:
            continue  # old exporters list initializers among the inputs
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim if d.HasField("dim_value")]
        if any(d < -1 for d in dims):  # -1 is how exporters write "any size"
            raise ModelError(f"graph input '{vi.name}' has a negative dimension in its shape "
                             f"{dims}")
        t = type_from_proto(vi.type, f"graph input '{vi.name}': ")
        v = g.add_input(claim_name(vi.name), t)
        local[vi.name] = v
    for t in gp.initializer:
        local[t.name] = g.add_constant(claim_name(t.name), load_tensor(t))
    for st in gp.sparse_initializer:
        local[st.values.name] = g.add_constant(claim_name(st.values.name), _sparse_to_dense(st))

    for proto in gp.node:
        _add_node(g, proto, opset, local, types, load_tensor, claim_name)
    # inputs are connected after all nodes exist, so unsorted models import (then sort)
    for node in g.nodes:
        for name in node.meta.pop("_input_names"):
            if not name:
                node.add_input(None)
                continue
            if name not in local:
                raise ModelError(f"{node.describe()} reads '{name}', which nothing defines")
            node.add_input(local[name])
        while node.inputs and node.inputs[-1] is None:
            node.inputs.pop()
    outs = []
    for vi in gp.output:
        if vi.name not in local:
            raise ModelError(f"graph output '{vi.name}' is not defined by any node")
        v = local[vi.name]
        if v.type is None or (isinstance(v.type, TensorType) and v.type.shape is None):
            declared = type_from_proto(vi.type, f"graph output '{vi.name}': ")
            if declared is not None:
                v.type = declared
        outs.append(v)
    g.outputs = outs
    toposort(g)
    return g


def _add_node(g: Graph, proto, opset, local: dict, types: dict, load_tensor,
              claim_name) -> None:
    """One NodeProto into ``g``: a Constant becomes a constant, any other node is linked
    with its outputs (its inputs are connected once every node exists)."""
    if proto.op_type == "Constant" and proto.domain in ("", "ai.onnx") and \
            len(proto.output) == 1:
        arr = _constant_value(proto, load_tensor)
        local[proto.output[0]] = g.add_constant(claim_name(proto.output[0]), arr)
        return
    node = Node(proto.op_type, "" if proto.domain == "ai.onnx" else proto.domain,
                name=proto.name)
    node.graph = g
    outs = []
    for i, name in enumerate(proto.output):
        if not name:
            outs.append(None)
            continue
        v = Value(g.fresh_name(name), type_from_proto(types[name], f"value '{name}': ")
                  if name in types else None)
        v.graph, v.producer, v.index = g, node, i
        local[name] = v
        outs.append(v)
    while outs and outs[-1] is None:
        outs.pop()
    node.outputs = outs
    node.meta["_input_names"] = list(proto.input)
    for a in proto.attribute:
        node.attrs[a.name] = attr_from_proto(a, opset, g, local, load_tensor)
    g.insert(node)


def _sparse_to_dense(st: onnx.SparseTensorProto) -> np.ndarray:
    from onnx import numpy_helper

    values = numpy_helper.to_array(st.values)
    indices = numpy_helper.to_array(st.indices)
    dense = np.zeros(tuple(st.dims), dtype=values.dtype)
    flat = dense.reshape(-1)
    if indices.ndim == 2:
        indices = np.ravel_multi_index(indices.T, dense.shape)
    flat[indices] = values
    return dense


def _constant_value(proto: onnx.NodeProto, load_tensor) -> np.ndarray:
    a = proto.attribute[0] if proto.attribute else None
    if a is None:
        raise ModelError(f"Constant node '{proto.name}' has no value")
    if a.name == "value":
        return load_tensor(a.t)
    if a.name == "sparse_value":
        return _sparse_to_dense(a.sparse_tensor)
    if a.name == "value_float":
        return np.array(a.f, dtype=np.float32)
    if a.name == "value_floats":
        return np.array(list(a.floats), dtype=np.float32)
    if a.name == "value_int":
        return np.array(a.i, dtype=np.int64)
    if a.name == "value_ints":
        return np.array(list(a.ints), dtype=np.int64)
    if a.name == "value_string":
        return np.array(a.s.decode(), dtype=object)
    if a.name == "value_strings":
        return np.array([s.decode() for s in a.strings], dtype=object)
    raise ModelError(f"Constant node '{proto.name}' has an unknown attribute '{a.name}'")


def attr_from_proto(a: AttributeProto, opset, g: Graph, scope, load_tensor=array_from_proto):
    """An attribute's value as plain Python (floats exact at float32)."""
    t = a.type
    if t == AttributeProto.FLOAT:
        return float(np.float32(a.f))
    if t == AttributeProto.INT:
        return int(a.i)
    if t == AttributeProto.STRING:
        return a.s.decode("utf-8", "replace")
    if t == AttributeProto.FLOATS:
        return [float(x) for x in np.array(a.floats, dtype=np.float32)]
    if t == AttributeProto.INTS:
        return [int(x) for x in a.ints]
    if t == AttributeProto.STRINGS:
        return [s.decode("utf-8", "replace") for s in a.strings]
    if t == AttributeProto.TENSOR:
        return load_tensor(a.t)
    if t == AttributeProto.SPARSE_TENSOR:
        return _sparse_to_dense(a.sparse_tensor)
    if t == AttributeProto.GRAPH:
        return graph_from_proto(a.g, opset, g, scope, load_tensor)
    if t == AttributeProto.GRAPHS:
        return [graph_from_proto(x, opset, g, scope, load_tensor) for x in a.graphs]
    if t == AttributeProto.TYPE_PROTO:
        return type_from_proto(a.tp)
    if t == AttributeProto.TENSORS:
        return [load_tensor(x) for x in a.tensors]
    raise NpucError(f"attribute '{a.name}' has a type npuc does not support ({t})")


# -- IR -> ONNX ------------------------------------------------------------------------
_TYPE_OF_PY = {int: AttributeProto.INT, float: AttributeProto.FLOAT, str: AttributeProto.STRING}
_ATTR_ENUM = {"int": AttributeProto.INT, "float": AttributeProto.FLOAT,
              "string": AttributeProto.STRING, "ints": AttributeProto.INTS,
              "floats": AttributeProto.FLOATS, "strings": AttributeProto.STRINGS,
              "tensor": AttributeProto.TENSOR, "graph": AttributeProto.GRAPH,
              "graphs": AttributeProto.GRAPHS, "tensors": AttributeProto.TENSORS,
              "type_proto": AttributeProto.TYPE_PROTO}


def attr_to_proto(name: str, value, node: Node | None = None) -> AttributeProto:
    """An AttributeProto; the schema decides the kind where Python cannot (empty lists)."""
    kind = None
    if node is not None:
        opset = node.graph.opset_of(node.domain) if node.graph is not None else None
        schema = get_schema(node.op_type, node.domain, opset)
        spec = schema.attrs.get(name) if schema is not None else None
        if spec is not None:
            kind = _ATTR_ENUM.get(spec.type)
    if isinstance(value, Graph):
        return helper.make_attribute(name, graph_to_proto(value))
    if isinstance(value, list) and value and isinstance(value[0], Graph):
        return helper.make_attribute(name, [graph_to_proto(x) for x in value])
    if isinstance(value, np.ndarray):
        return helper.make_attribute(name, array_to_proto(value))
    if isinstance(value, (TensorType, SequenceType, OptionalType)):
        return helper.make_attribute(name, type_to_proto(value))
    if kind == AttributeProto.FLOAT and isinstance(value, (int, np.integer)):
        value = float(value)
    if kind == AttributeProto.FLOATS and isinstance(value, list):
        value = [float(x) for x in value]
    if isinstance(value, list) and not value:
        return helper.make_attribute(name, [], attr_type=kind or AttributeProto.INTS)
    if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
        return helper.make_attribute(name, [array_to_proto(x) for x in value])
    return helper.make_attribute(name, value)


def graph_to_proto(graph: Graph, value_info: bool = True, tensor_hook=None) -> onnx.GraphProto:
    """A GraphProto of a Graph (constants become initializers).

    ``tensor_hook(value)`` may return the TensorProto for a constant itself (for example
    one whose data lives in an external file); None falls back to inline data.
    """
    nodes = []
    for n in graph.nodes:
        proto = helper.make_node(
            n.op_type, ["" if v is None else v.name for v in n.inputs],
            ["" if v is None else v.name for v in n.outputs],
            name=n.name or None, domain=n.domain or None)
        proto.attribute.extend(attr_to_proto(k, n.attrs[k], n) for k in sorted(n.attrs))
        nodes.append(proto)
    inits = []
    for v in graph.constants.values():
        t = tensor_hook(v) if tensor_hook is not None else None
        inits.append(t if t is not None else array_to_proto(v.const, v.name, v.type.dtype))
    inputs = [helper.make_value_info(v.name, type_to_proto(v.type)) for v in graph.inputs]
    # onnxruntime takes one dim_param for one size everywhere; a symbol inference made up
    # inside the graph ('unk__3') is not a promise npuc can keep, so it is written open
    symbols = {d for v in graph.inputs if isinstance(v.type, TensorType) and v.type.shape
               for d in v.type.shape if isinstance(d, str)}
    outputs = [helper.make_value_info(v.name, type_to_proto(_known(v.type, symbols)))
               for v in graph.outputs]
    infos = []
    if value_info:
        out_ids = {id(v) for v in graph.outputs}
        for n in graph.nodes:
            for v in n.outputs:
                if v is not None and v.type is not None and id(v) not in out_ids:
                    infos.append(helper.make_value_info(v.name,
                                                        type_to_proto(_known(v.type, symbols))))
    return helper.make_graph(nodes, graph.name, inputs, outputs, initializer=inits,
                             value_info=infos)


def _known(t, symbols: set):
    """``t`` with the symbolic dimensions not among ``symbols`` made anonymous."""
    if not isinstance(t, TensorType) or t.shape is None:
        return t
    if all(not isinstance(d, str) or d in symbols for d in t.shape):
        return t
    return t.with_shape([d if not isinstance(d, str) or d in symbols else None
                         for d in t.shape])

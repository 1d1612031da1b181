"""ONNX -> IR: read a model file safely, check it, infer shapes, build the graph.

Every problem with the user's file becomes a one-line :class:`ModelError` or
:class:`UnsupportedError` naming the file and, where there is one, the node.
External data is read only from inside the model's own folder; models over 2 GB work
because tensor data is never loaded into the protobuf message (:mod:`.external_data`).
onnx's own checker and shape inference run through :mod:`.onnx_checker`.
"""

from __future__ import annotations

import os

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import uses_external_data

from npuc.ir.errors import ModelError, NpucError, UnsupportedError
from npuc.ir.graph import Graph
from npuc.ir.onnx_io import graph_from_proto
from npuc.ir.onnx_types import array_from_proto
from npuc.ir.schema import custom_ops
from npuc.ir.verifier import verify

from . import contrib_schemas  # noqa: F401  (declares onnxruntime's com.microsoft operators)
from .external_data import check_external_data, map_external
from .onnx_checker import check_proto, infer_model_shapes, take_types, without_weights

OLDEST_OPSET = 1


def import_onnx(model, infer_shapes: bool = True, source: str | None = None,
                base_dir: str | None = None, arrays: dict | None = None) -> Graph:
    """Import an ONNX model (a path or a ``ModelProto``) as an npuc Graph; ``source`` names
    a ModelProto's file in messages, ``base_dir`` is the folder its external data is
    mapped from (a path's own folder otherwise). ``arrays`` (name -> array) holds the
    values of initializers kept out of the proto (``zoo.build(..., arrays=)``)."""
    arrays = arrays or {}
    if isinstance(model, onnx.ModelProto):
        where = source or model.graph.name or "model"
        proto = model
    else:
        where = os.fspath(model)
        proto = _read(where)
        base_dir = os.path.dirname(os.path.abspath(where))
    check_external_data(proto, where, base_dir)
    proto = contrib_schemas.onnx_domain_to_contrib(proto)
    opset = _opsets(proto, where)
    _check_operators(proto.graph, opset, where)
    _sort_nodes(proto.graph, where)
    light = without_weights(proto)
    check_proto(light if light is not None else proto, where,
                 where if base_dir is not None else None)
    if infer_shapes:
        if light is None:
            proto = infer_model_shapes(proto, where)
        else:
            take_types(proto, infer_model_shapes(light, where))

    def load_tensor(t):
        if t.name in arrays:
            return arrays[t.name]
        if uses_external_data(t) and base_dir is None:
            raise ModelError(f"{where}: tensor '{t.name}' keeps its data in an external file; "
                             "import the model from its path")
        try:
            if uses_external_data(t):
                mapped = map_external(t, base_dir, where)
                if mapped is not None:
                    return mapped
            return array_from_proto(t, base_dir)
        except (OSError, ValueError) as e:
            raise ModelError(f"{where}: cannot read tensor '{t.name}': {e}") from None

    try:
        graph = graph_from_proto(proto.graph, opset, load_tensor=load_tensor)
        verify(graph, check_schemas=False)
    except NpucError as e:
        if str(e).startswith(f"{where}: "):
            raise
        raise type(e)(f"{where}: {e}") from None
    graph.meta["producer"] = proto.producer_name
    graph.meta["source"] = where
    return graph


def _read(path: str) -> onnx.ModelProto:
    from npuc.ir.safeio import check_input_file

    if not os.path.exists(path):
        raise ModelError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelError(f"{path}: is a folder, not an ONNX model file")
    check_input_file(path)
    if os.path.getsize(path) == 0:
        raise ModelError(f"{path}: the file is empty")
    proto = onnx.ModelProto()
    try:
        with open(path, "rb") as f:
            proto.ParseFromString(f.read())
    except (DecodeError, RuntimeError, ValueError):
        raise ModelError(f"{path}: not an ONNX model (the file does not parse as one; "
                         "truncated or not a model)") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read: {e.strerror}") from None
    if not proto.opset_import and not proto.graph.node and proto.ir_version == 0:
        raise ModelError(f"{path}: not an ONNX model (no graph, no opset, no IR version)")
    return proto


def _opsets(proto: onnx.ModelProto, where: str) -> dict[str, int]:
    opset = {}
    for o in proto.opset_import:
        opset["" if o.domain in ("", "ai.onnx") else o.domain] = int(o.version)
    newest = onnx.defs.onnx_opset_version()
    if "" not in opset:  # a model of only other domains: its default-domain nodes are new
        opset[""] = newest
    if opset[""] < OLDEST_OPSET:
        raise UnsupportedError(f"{where}: opset {opset['']} is older than npuc reads "
                               f"(opset {OLDEST_OPSET} to {newest}); convert it with "
                               "onnx.version_converter first")
    if opset[""] > newest:
        raise UnsupportedError(f"{where}: opset {opset['']} is newer than this npuc knows "
                               f"(up to {newest}); upgrade the onnx package")
    return opset


def _check_operators(gp: onnx.GraphProto, opset: dict[str, int], where: str) -> None:
    """Name the first operator that neither ONNX nor npuc knows."""
    known_custom = custom_ops()
    local = {(f.domain, f.name) for f in ()}
    for node in gp.node:
        domain = "" if node.domain == "ai.onnx" else node.domain
        schema = known_custom.get((domain, node.op_type))
        if schema is not None:  # onnx's checker does not know these: check attributes here
            given = {a.name for a in node.attribute}
            missing = [a for a, spec in schema.attrs.items() if spec.required and a not in given]
            if missing:
                raise ModelError(f"{where}: node '{node.name or node.output[0]}' "
                                 f"({node.op_type}) lacks its required attribute '{missing[0]}'")
            n = len(node.input)
            if not schema.min_inputs <= n <= schema.max_inputs:
                want = schema.min_inputs if schema.min_inputs == schema.max_inputs else \
                    f"at least {schema.min_inputs}" if schema.max_inputs > 1 << 20 else \
                    f"{schema.min_inputs} to {schema.max_inputs}"
                raise ModelError(f"{where}: node '{node.name or node.output[0]}' "
                                 f"({node.op_type}) has {n} inputs; it takes {want}")
        if (domain, node.op_type) not in known_custom and (domain, node.op_type) not in local:
            version = opset.get(domain)
            if version is None:
                raise ModelError(f"{where}: node '{node.name or node.output[0]}' uses domain "
                                 f"'{domain}', which the model does not import")
            if not onnx.defs.has(node.op_type, domain):
                dom = f" in domain '{domain}'" if domain else ""
                raise UnsupportedError(
                    f"{where}: unknown operator '{node.op_type}'{dom} in node "
                    f"'{node.name or node.output[0]}'")
            try:
                onnx.defs.get_schema(node.op_type, version, domain)
            except onnx.defs.SchemaError:
                raise UnsupportedError(
                    f"{where}: operator '{node.op_type}' in node '{node.name or node.output[0]}'"
                    f" does not exist at opset {version}") from None
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _check_operators(a.g, opset, where)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    _check_operators(g, opset, where)


def _sort_nodes(gp: onnx.GraphProto, where: str) -> None:
    """Put the nodes in an order where producers come first, or name a node on a cycle.

    Nameless nodes get their first output's name, so that every message can name them.
    """
    import heapq

    for node in gp.node:
        if not node.name:
            node.name = next((o for o in node.output if o), node.op_type)
    producer = {}
    for i, node in enumerate(gp.node):
        for o in node.output:
            if o:
                producer[o] = i
    deps = []
    users: dict[int, list[int]] = {}
    for i, node in enumerate(gp.node):
        d = {producer[x] for x in _reads(node) if x in producer and producer[x] != i}
        deps.append(d)
        for j in d:
            users.setdefault(j, []).append(i)
    ready = [i for i, d in enumerate(deps) if not d]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users.get(i, ()):
            deps[u].discard(i)
            if not deps[u]:
                heapq.heappush(ready, u)
    if len(order) != len(gp.node):
        stuck = next(gp.node[i] for i, d in enumerate(deps) if d)
        raise ModelError(f"{where}: the graph has a cycle through node '{stuck.name}' "
                         f"({stuck.op_type})")
    if order != list(range(len(gp.node))):
        nodes = [gp.node[i] for i in order]
        copies = [onnx.NodeProto() for _ in nodes]
        for c, n in zip(copies, nodes):
            c.CopyFrom(n)
        del gp.node[:]
        gp.node.extend(copies)


def _reads(node: onnx.NodeProto):
    """Names a node reads, including those its subgraphs capture from outside."""
    yield from (x for x in node.input if x)
    for a in node.attribute:
        subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for g in subs:
            inner = {x.name for x in g.input} | {t.name for t in g.initializer}
            inner |= {o for n in g.node for o in n.output}
            for n in g.node:
                yield from (x for x in _reads(n) if x not in inner)

"""ONNX -> IR: read a model file safely, check it, infer shapes, build the graph.

Every problem with the user's file becomes a one-line :class:`ModelError` or
:class:`UnsupportedError` naming the file and, where there is one, the node.
External data is read only from inside the model's own folder; models over 2 GB work
because tensor data is never loaded into the protobuf message.
"""

from __future__ import annotations

import math
import os
import re

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

OLDEST_OPSET = 1


def import_onnx(model, infer_shapes: bool = True, source: str | None = None,
                base_dir: str | None = None) -> Graph:
    """Import an ONNX model (a path or a ``ModelProto``) as an npuc Graph; ``source`` names
    a ModelProto's file in messages, ``base_dir`` is the folder its external data is
    mapped from (a path's own folder otherwise)."""
    if isinstance(model, onnx.ModelProto):
        where = source or model.graph.name or "model"
        proto = model
    else:
        where = os.fspath(model)
        proto = _read(where)
        base_dir = os.path.dirname(os.path.abspath(where))
    _check_external_data(proto, where, base_dir)
    proto = contrib_schemas.onnx_domain_to_contrib(proto)
    opset = _opsets(proto, where)
    _check_operators(proto.graph, opset, where)
    _sort_nodes(proto.graph, where)
    light = _without_weights(proto)
    _check_proto(light if light is not None else proto, where,
                 where if base_dir is not None else None)
    if infer_shapes:
        if light is None:
            proto = _infer_shapes(proto, where)
        else:
            _take_types(proto, _infer_shapes(light, where))

    def load_tensor(t):
        if uses_external_data(t) and base_dir is None:
            raise ModelError(f"{where}: tensor '{t.name}' keeps its data in an external file; "
                             "import the model from its path")
        try:
            if uses_external_data(t):
                mapped = _map_external(t, base_dir, where)
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


def _map_external(t: onnx.TensorProto, base_dir: str, where: str):
    """Map a tensor's external data into memory (copy-on-write) instead of reading it.

    Large models load at once and only the pages used are read. Packed types (int4,
    float4) and strings go through onnx's reader instead (None).
    """
    import numpy as np
    from onnx.external_data_helper import ExternalDataInfo

    from npuc.ir.dtypes import BY_ONNX

    dt = BY_ONNX.get(t.data_type)
    if dt is None or dt.bits < 8 or dt.kind == "string":
        return None
    info = ExternalDataInfo(t)
    shape = tuple(int(d) for d in t.dims)
    count = math.prod(shape)
    need = count * dt.itemsize
    if info.length and int(info.length) != need:
        raise ModelError(f"{where}: tensor '{t.name}' has {info.length} bytes of external data, "
                         f"its shape {list(shape)} needs {need}")
    path = os.path.join(base_dir, info.location)
    offset = int(info.offset or 0)
    if offset + need > os.path.getsize(path):
        raise ModelError(f"{where}: tensor '{t.name}' reads past the end of '{info.location}'")
    if count == 0:
        return np.zeros(shape, dtype=dt.numpy)
    return np.memmap(path, dtype=dt.numpy, mode="c", offset=offset, shape=shape) \
        .view(np.ndarray)


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


def check_external_data(proto: onnx.ModelProto, where: str, base_dir: str | None) -> None:
    """Refuse external data that escapes the model's folder, is not a regular file, or
    whose offset or length is not a byte count."""
    _check_external_data(proto, where, base_dir)


def _check_external_data(proto: onnx.ModelProto, where: str, base_dir: str | None) -> None:
    """Refuse external data whose location escapes the model's folder."""
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors

    if base_dir is None:
        return
    root = os.path.realpath(base_dir)
    for t in _get_all_tensors(proto):
        if not uses_external_data(t):
            continue
        fields = {e.key: e.value for e in t.external_data}
        for key in ("offset", "length"):
            value = fields.get(key, "0")
            if not value.isdigit():
                raise ModelError(f"{where}: tensor '{t.name}' has external data {key} "
                                 f"{value!r}; it must be a whole number of bytes, 0 or more")
        loc = fields.get("location", "")
        if not loc or "\0" in loc:
            raise ModelError(f"{where}: tensor '{t.name}' has an invalid external data location "
                             f"{loc!r}")
        loc = ExternalDataInfo(t).location
        target = os.path.realpath(os.path.join(root, loc))
        if os.path.isabs(loc) or os.path.commonpath([root, target]) != root:
            raise ModelError(f"{where}: tensor '{t.name}' keeps its data at '{loc}', outside "
                             "the model's folder; refusing to read it")
        if not os.path.exists(target):
            raise ModelError(f"{where}: tensor '{t.name}' keeps its data in '{loc}', which "
                             "does not exist next to the model")
        from npuc.ir.safeio import check_input_file

        check_input_file(target)


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


def _first_lines(e: Exception) -> str:
    lines = [x.strip() for x in str(e).strip().splitlines() if x.strip()]
    if not lines:
        return type(e).__name__
    msg = lines[0]
    for x in lines[1:]:
        if x.startswith("==> Context:"):
            msg += " (" + x[len("==> Context:"):].strip() + ")"
            break
    msg = msg.replace("[ShapeInferenceError] ", "").replace("[TypeInferenceError] ", "")
    m = re.search(r"\(op_type:(\w+), node name: ([^)]*)\): (.*)", msg)
    if m:
        msg = f"{m.group(1)} node '{m.group(2)}': {m.group(3)}"
    return msg.replace("Inference error(s): ", "")


def _check_proto(proto: onnx.ModelProto, where: str, path: str | None) -> None:
    from onnx.external_data_helper import _get_all_tensors

    external = any(uses_external_data(t) for t in _get_all_tensors(proto))
    try:
        if external and path is not None:  # the checker finds the data files from the path
            onnx.checker.check_model(path, full_check=False)
        else:
            onnx.checker.check_model(proto, full_check=False)
    except onnx.checker.ValidationError as e:
        msg = _first_lines(e)
        if "topologically sorted" in msg:
            return  # npuc sorts the nodes itself (and names a node on a cycle if there is one)
        raise ModelError(f"{where}: invalid model: {msg}") from None
    except Exception as e:  # the checker can fail in other ways on damaged files
        raise ModelError(f"{where}: invalid model: {_first_lines(e)}") from None


# Initializers above this many elements are left out of the copy that the checker and shape
# inference see: both serialize the whole model, which costs more than the rest of the
# import for a large model, and neither needs weight data (shape data is small).
LIGHT_LIMIT = 1024


def _without_weights(proto: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy of the model whose large initializers are typed graph inputs, or None.

    None when there is nothing large to leave out, or when tensors live in external
    files (then the checker must see them as they are).
    """
    from onnx import helper

    graph = proto.graph
    big = [t for t in graph.initializer if math.prod(t.dims) > LIGHT_LIMIT]
    if not big or any(uses_external_data(t) for t in graph.initializer):
        return None
    light = onnx.ModelProto()
    light.ir_version = proto.ir_version
    light.opset_import.extend(proto.opset_import)
    light.functions.extend(proto.functions)
    g = light.graph
    g.name = graph.name
    g.node.extend(graph.node)
    g.input.extend(graph.input)
    g.output.extend(graph.output)
    g.value_info.extend(graph.value_info)
    g.sparse_initializer.extend(graph.sparse_initializer)
    big_names = {t.name for t in big}
    declared = {i.name for i in graph.input}
    g.initializer.extend(t for t in graph.initializer if t.name not in big_names)
    for t in big:
        if t.name not in declared:
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return light


def _take_types(proto: onnx.ModelProto, inferred: onnx.ModelProto) -> None:
    """Copy the types shape inference found (on the light copy) into the model."""
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(inferred.graph.value_info)
    found = {o.name: o for o in inferred.graph.output}
    for o in proto.graph.output:
        if o.name in found:
            o.type.CopyFrom(found[o.name].type)


# Operators that make tensors whose size comes from data: onnx's data propagation can
# allocate such a tensor whole, so their sizes are checked first without it.
_SIZED_BY_DATA = {"ConstantOfShape", "Range", "Tile", "Expand", "Resize", "Upsample", "Pad",
                  "OneHot", "EyeLike", "RandomNormal", "RandomUniform"}


def _check_sizes_first(proto: onnx.ModelProto, where: str) -> None:
    """Refuse a tensor beyond the size guard before onnx's data propagation makes it."""
    from npuc.ir.dtypes import BY_ONNX
    from npuc.ir.limits import SizeError, check_shape

    if not any(n.op_type in _SIZED_BY_DATA for n in proto.graph.node):
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False,
                                                     data_prop=False)
    except Exception:
        return  # the full inference below reports the model's problem
    producer = {o: n for n in proto.graph.node for o in n.output}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if not tt.HasField("shape") or any(d is None for d in dims):
            continue
        dt = BY_ONNX.get(tt.elem_type)
        node = producer.get(vi.name)
        what = f"{node.op_type} node '{node.name}'" if node is not None else f"'{vi.name}'"
        try:
            check_shape(dims, max(dt.bits // 8, 1) if dt is not None else 1, what)
        except SizeError as e:
            raise SizeError(f"{where}: {e}") from None


def _infer_shapes(proto: onnx.ModelProto, where: str) -> onnx.ModelProto:
    _check_sizes_first(proto, where)
    try:
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True,
                                                 data_prop=True)
    except Exception as e:
        msg = _first_lines(e)
        if "topologically" in msg or "not output of any previous nodes" in msg:
            return proto
        if re.match(r"\w+ node '[^']*': \(op_type:\w+\)", msg):
            # The error is inside an operator's ONNX function body (onnx's inference of
            # some bodies fails on default attributes); the model itself is not at fault.
            return onnx.shape_inference.infer_shapes(proto, check_type=False,
                                                     strict_mode=False, data_prop=True)
        raise ModelError(f"{where}: {msg}") from None

"""What onnx's own checker and shape inference say about a model, as one-line errors
naming the file and the node.

Both serialize the whole model; a model with large weights is given to them as a light
copy without those weights (:func:`without_weights`), and the types inference finds are
copied back (:func:`take_types`).
"""

from __future__ import annotations

import math
import re

import onnx
from onnx.external_data_helper import uses_external_data

from npuc.ir.errors import ModelError


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


def check_proto(proto: onnx.ModelProto, where: str, path: str | None) -> None:
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


def without_weights(proto: onnx.ModelProto) -> onnx.ModelProto | None:
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


def take_types(proto: onnx.ModelProto, inferred: onnx.ModelProto) -> None:
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


def infer_model_shapes(proto: onnx.ModelProto, where: str) -> onnx.ModelProto:
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

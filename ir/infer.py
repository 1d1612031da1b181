"""Type and shape inference for single nodes.

npuc operators carry their own ``infer`` in their schema. Standard ONNX operators use a
few fast rules below for the operators passes create most often, and otherwise ask
``onnx.shape_inference`` about a one-node model built from the node (constant inputs
included, so that shapes computed from data, as in Reshape, come out right).
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import helper

from .errors import NpucError
from .graph import Graph, Node
from .onnx_types import array_to_proto, type_from_proto, type_to_proto
from .schema import get_schema
from .types import TensorType, Type, broadcast_shapes

_RULES: dict[str, Callable[[Node], list[Type | None]]] = {}


def rule(*ops):
    def register(fn):
        for op in ops:
            _RULES[op] = fn
        return fn

    return register


def _t(node: Node, i: int) -> TensorType | None:
    v = node.input(i)
    return v.type if v is not None and isinstance(v.type, TensorType) else None


@rule("Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Neg", "Abs", "Reciprocal",
      "LeakyRelu", "HardSwish", "HardSigmoid", "Gelu", "Elu", "Softplus", "Identity",
      "Softmax", "LogSoftmax", "Clip", "Dropout", "LayerNormalization",
      "BatchNormalization", "InstanceNormalization", "Floor", "Ceil", "Round", "Sin", "Cos")
def _same_as_first(node):
    t = _t(node, 0)
    if t is None:
        return [None] * len(node.outputs)
    return [t.with_quant(None)] + [None] * (len(node.outputs) - 1)


@rule("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu", "Mod")
def _broadcast(node):
    types = [_t(node, i) for i in range(len(node.inputs))]
    if any(t is None or t.shape is None for t in types):
        return [None]
    shape = types[0].shape
    for t in types[1:]:
        try:
            shape = broadcast_shapes(shape, t.shape)
        except ValueError as e:
            raise NpucError(f"{node.describe()}: {e}") from None
    return [TensorType(types[0].dtype, shape)]


@rule("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor")
def _compare(node):
    out = _broadcast(node)
    return [None if out[0] is None else TensorType("bool", out[0].shape)]


@rule("Where")
def _where(node):
    types = [_t(node, i) for i in range(3)]
    if any(t is None or t.shape is None for t in types):
        return [None]
    shape = broadcast_shapes(broadcast_shapes(types[0].shape, types[1].shape), types[2].shape)
    return [TensorType(types[1].dtype, shape)]


@rule("MatMul")
def _matmul(node):
    a, b = _t(node, 0), _t(node, 1)
    if a is None or b is None or a.shape is None or b.shape is None:
        return [None]
    sa, sb = list(a.shape), list(b.shape)
    if len(sa) == 0 or len(sb) == 0:
        return [None]
    squeeze_a, squeeze_b = len(sa) == 1, len(sb) == 1
    if squeeze_a:
        sa = [1] + sa
    if squeeze_b:
        sb = sb + [1]
    k1, k2 = sa[-1], sb[-2]
    if isinstance(k1, int) and isinstance(k2, int) and k1 != k2:
        raise NpucError(f"{node.describe()}: cannot multiply {list(a.shape)} by {list(b.shape)}")
    batch = broadcast_shapes(tuple(sa[:-2]), tuple(sb[:-2]))
    shape = list(batch) + ([] if squeeze_a else [sa[-2]]) + ([] if squeeze_b else [sb[-1]])
    return [TensorType(a.dtype, tuple(shape))]


def infer_node(node: Node) -> list[Type | None]:
    """The types of a node's outputs from its inputs (None where they cannot be known).

    An output larger than the size guard allows (:mod:`npuc.ir.limits`) is refused here,
    before anything tries to make it."""
    from .limits import check_type

    types = _infer_node(node)
    for t in types:
        check_type(t, node.describe())
    return types


def _infer_node(node: Node) -> list[Type | None]:
    opset = node.graph.opset_of(node.domain) if node.graph is not None else None
    schema = get_schema(node.op_type, node.domain, opset)
    if schema is not None and schema.infer is not None:
        return list(schema.infer(node))
    fast = _RULES.get(node.op_type) if node.domain == "" else None
    if fast is not None:
        return fast(node)
    return _infer_with_onnx(node, opset)


def _infer_with_onnx(node: Node, opset: int | None) -> list[Type | None]:
    from .onnx_io import attr_to_proto  # the one conversion of attributes to protos

    inputs, inits, names = [], [], []
    for i, v in enumerate(node.inputs):
        if v is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if v.const is not None and v.const.size <= 4096:
            inits.append(array_to_proto(v.const, name))
        inputs.append(helper.make_value_info(name, type_to_proto(v.type)))
    outs = [f"out{i}" for i in range(len(node.outputs))]
    try:
        attrs = [attr_to_proto(k, a, node) for k, a in node.attrs.items()
                 if not isinstance(a, Graph)]
    except Exception:
        return [None] * len(node.outputs)
    proto = helper.make_node(node.op_type, names, outs, domain=node.domain or None)
    proto.attribute.extend(attrs)
    graph = helper.make_graph([proto], "infer", inputs,
                              [helper.make_value_info(o, onnx.TypeProto()) for o in outs],
                              initializer=inits)
    imports = [helper.make_opsetid(node.domain, opset or 1)] if node.domain else []
    if node.domain != "":
        imports.append(helper.make_opsetid("", 21))
    else:
        imports.append(helper.make_opsetid("", opset or onnx.defs.onnx_opset_version()))
    model = helper.make_model(graph, opset_imports=imports)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=True,
                                                     data_prop=True)
    except Exception as e:  # onnx reports the inconsistency; say it about this node
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise NpucError(f"{node.describe()}: {msg}") from None
    found = {vi.name: vi.type for vi in inferred.graph.output}
    found.update({vi.name: vi.type for vi in inferred.graph.value_info})
    result = []
    for o in outs:
        tp = found.get(o)
        result.append(None if tp is None else type_from_proto(tp))
    return result


def infer_graph(graph: Graph, overwrite: bool = False) -> None:
    """Fill in missing output types (all of them with ``overwrite``) in order."""
    for node in graph.nodes:
        if not overwrite and all(v.type is not None and getattr(v.type, "shape", 0) is not None
                                 for v in node.outputs):
            continue
        types = infer_node(node)
        for v, t in zip(node.outputs, types):
            if t is not None and (overwrite or v.type is None or
                                  getattr(v.type, "shape", 0) is None):
                v.type = t if not isinstance(v.type, TensorType) or v.type.quant is None \
                    else t.with_quant(v.type.quant)

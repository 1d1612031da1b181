"""Operators defined by an ONNX function body run as that body.

Many ONNX operators (SoftmaxCrossEntropyLoss, NegativeLogLikelihoodLoss, SwiGLU, ...)
are specified by a function: a small graph of simpler operators, sometimes built for the
node's input types ("context-dependent"). When npuc has no kernel of its own for such an
operator, this kernel asks onnx for the body at the node's opset, inlines it with
``onnx.inliner`` and runs it with ``ctx.run_graph`` (the interpreter's). The expanded graph is cached per
operator, opset, attributes and input types.
"""

from __future__ import annotations

import onnx
import onnx.defs
import onnx.inliner
from onnx import helper

from npuc.ir.errors import UnsupportedError

_CACHE: dict = {}
_FN_DOMAIN = "npuc.function"


def has_function(op_type: str, domain: str, opset: int) -> bool:
    """True when onnx defines the operator by a (possibly context-dependent) function."""
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return False
    return schema.has_function or schema.has_context_dependent_function


def function_kernel(inputs, attrs, ctx):
    """Run the node as its ONNX function body."""
    from npuc.ir.dtypes import of_array
    from npuc.ir.onnx_io import attr_to_proto
    from npuc.ir.onnx_types import type_to_proto
    from npuc.ir.types import TensorType

    node = ctx.node
    op, domain = node.op_type, node.domain
    types = []
    for a in inputs:
        if a is None:
            types.append(None)
        elif isinstance(a, list):
            raise UnsupportedError(f"{ctx.describe()}: a function operator over sequences is "
                                   "not supported")
        else:
            types.append(TensorType(of_array(a), a.shape))
    attr_protos = [attr_to_proto(k, v, node) for k, v in sorted(attrs.items())]
    key = (op, domain, ctx.opset, tuple(a.SerializeToString() for a in attr_protos),
           tuple(None if t is None else (t.dtype.name, t.shape) for t in types),
           ctx.num_outputs)
    graph = _CACHE.get(key)
    if graph is None:
        graph = _CACHE[key] = _expand(node, ctx, types, attr_protos, type_to_proto)
    if ctx.run_graph is None:
        raise UnsupportedError(f"{ctx.describe()}: runs as its ONNX function body, which "
                               "needs the interpreter (npuc.compiler.executor.evaluate)")
    feeds = {f"x{i}": a for i, a in enumerate(inputs) if a is not None}
    return list(ctx.run_graph(graph, feeds))


def _expand(node, ctx, types, attr_protos, type_to_proto):
    from npuc.ir.onnx_io import graph_from_proto

    op, domain = node.op_type, node.domain
    schema = onnx.defs.get_schema(op, ctx.opset, domain)
    in_names = ["" if t is None else f"x{i}" for i, t in enumerate(types)]
    out_names = [f"y{i}" for i in range(ctx.num_outputs)]
    call = helper.make_node(op, in_names, out_names, domain=domain or None)
    call.attribute.extend(attr_protos)
    raw = None
    if schema.has_context_dependent_function:
        type_bytes = [type_to_proto(t).SerializeToString() for t in types if t is not None]
        raw = schema.get_context_dependent_function_with_opset_version(
            ctx.opset, call.SerializeToString(), type_bytes)
    elif schema.has_function:
        versions = [v for v in schema.function_opset_versions if v <= ctx.opset]
        raw = schema.get_function_with_opset_version(max(versions)) if versions else None
    if not raw:
        raise UnsupportedError(f"{ctx.describe()}: npuc's executor has no kernel for "
                               f"operator {node.qualified_type}")
    fn = onnx.FunctionProto()
    fn.ParseFromString(raw)
    fn.domain, fn.name = _FN_DOMAIN, op
    call.domain = _FN_DOMAIN
    inputs = [helper.make_value_info(n, type_to_proto(t)) for n, t in zip(in_names, types)
              if t is not None]
    outputs = [helper.make_value_info(n, onnx.TypeProto()) for n in out_names]
    imports = {o.domain: o.version for o in fn.opset_import}
    imports.setdefault("", ctx.opset if not domain else 21)
    imports[_FN_DOMAIN] = 1
    model = helper.make_model(
        helper.make_graph([call], op, inputs, outputs),
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(imports.items())],
        functions=[fn])
    inlined = onnx.inliner.inline_local_functions(model)
    del inlined.opset_import[:]
    inlined.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(imports.items())
                                if d != _FN_DOMAIN)
    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in inlined.opset_import}
    return graph_from_proto(inlined.graph, opsets)

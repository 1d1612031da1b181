"""QDQ ONNX export: the quantized graph in standard ONNX operators, for onnxruntime.

Each npuc operator becomes DequantizeLinear on its int8 inputs (weights per channel,
the int32 bias at scale ``s_x * s_w``), the float operator, the clamp as Relu or Clip,
and QuantizeLinear to the output's scale: the pattern onnxruntime fuses into
QLinearConv / QLinearMatMul / QLinearAdd and runs in integers. ``Lut`` becomes an exact
Gather from its table. The int8 values between operators keep their scales, so each
tensor onnxruntime computes is npuc's to within one unit of the last place: onnxruntime
requantizes with a float multiply rounded half to even, npuc (like the chip) with a
fixed-point multiplier rounded half away from zero (docs/quantization.md).
"""

from __future__ import annotations

import os

import numpy as np
from onnx import TensorProto

from npuc.ir.graph import Graph, Node, Value
from npuc.ir.types import TensorType


def _dq(g: Graph, v: Value, before: Node, axis: int | None = None) -> Value:
    cache = g.meta.setdefault("qdq_cache", {})
    if id(v) in cache:  # one DequantizeLinear per value, shared by its readers
        return cache[id(v)]
    q = v.type.quant
    zp = np.zeros(q.scale.shape, v.type.dtype.numpy) if q.zero_point.shape != q.scale.shape \
        else q.zero_point.astype(v.type.dtype.numpy)
    ins = [v, g.add_constant(f"{v.name}_dq_scale", q.scale),
           g.add_constant(f"{v.name}_dq_zero_point", zp)]
    attrs = {} if q.axis is None else {"axis": q.axis if axis is None else axis}
    node = g.create_node("DequantizeLinear", ins,
                         [(f"{v.name}_f", TensorType("f32", v.type.shape))], attrs,
                         name=f"{v.name}_dequantize", before=before)
    cache[id(v)] = node.outputs[0]
    return node.outputs[0]


def _q_out(g: Graph, node: Node, yf: Value) -> None:
    """QuantizeLinear ``yf`` into the node's int8 output, replacing the node."""
    y = node.outputs[0]
    q = y.type.quant
    attrs = node.attrs
    lo, hi = attrs.get("qmin", -128), attrs.get("qmax", 127)
    if lo > -128 or hi < 127:
        s, z = float(q.scale), int(q.zero_point)
        if lo == z and hi == 127:
            yf = g.create_node("Relu", [yf], [(f"{y.name}_relu", yf.type)], before=node).outputs[0]
        else:
            cmin = g.add_constant(f"{y.name}_min", np.float32((lo - z) * s))
            cmax = g.add_constant(f"{y.name}_max", np.float32((hi - z) * s))
            yf = g.create_node("Clip", [yf, cmin, cmax], [(f"{y.name}_clip", yf.type)],
                               before=node).outputs[0]
    qn = g.create_node("QuantizeLinear", [yf, g.add_constant(f"{y.name}_q_scale", q.scale),
                                          g.add_constant(f"{y.name}_q_zero_point",
                                                         q.zero_point.astype(np.int8))],
                       [(f"{y.name}_qdq", y.type)], name=f"{node.name}_quantize", before=node)
    out = qn.outputs[0]
    y.replace_all_uses_with(out)
    node.drop_inputs()
    g.remove_node(node)
    g.rename(out, y.name)


def _float(g, node, op, ins, attrs=None):
    y = node.outputs[0]
    return g.create_node(op, ins, [(f"{y.name}_float", TensorType("f32", y.type.shape))],
                         attrs or {}, name=node.name, before=node).outputs[0]


def _qconv(g, node):
    x, w, b = (_dq(g, node.inputs[i], node) if node.input(i) is not None else None
               for i in range(3))
    attrs = {k: node.attrs[k] for k in ("strides", "pads", "dilations", "group")
             if k in node.attrs}
    _q_out(g, node, _float(g, node, "Conv", [x, w] + ([b] if b is not None else []), attrs))


def _qmatmul(g, node):
    a = _dq(g, node.inputs[0], node)
    b = _dq(g, node.inputs[1], node, axis=1 if node.inputs[1].const is not None else None)
    y = _float(g, node, "MatMul", [a, b])
    if node.input(2) is not None:
        bias = _dq(g, node.inputs[2], node, axis=0)
        y = g.create_node("Add", [y, bias], [(f"{y.name}_bias", y.type)], before=node).outputs[0]
    _q_out(g, node, y)


def _binary(op):
    def convert(g, node):
        a, b = _dq(g, node.inputs[0], node), _dq(g, node.inputs[1], node)
        _q_out(g, node, _float(g, node, op, [a, b]))
    return convert


def _qadd(g, node):
    """QAdd; a negative multiplier of ``B`` (the quantizer's Sub) subtracts."""
    a, b = _dq(g, node.inputs[0], node), _dq(g, node.inputs[1], node)
    op = "Sub" if node.attrs.get("b_multiplier", 0) < 0 else "Add"
    _q_out(g, node, _float(g, node, op, [a, b]))


def _qreduce_sum(g, node):
    x = _dq(g, node.inputs[0], node)
    op = "ReduceMean" if node.attrs.get("mean", 0) else "ReduceSum"
    axes = [int(a) for a in node.attrs.get("axes") or []]
    attrs = {"keepdims": node.attrs.get("keepdims", 1)}
    ins = [x]
    if (g.opset_of("") or 17) >= (18 if op == "ReduceMean" else 13):  # axes as an input
        ins.append(g.add_constant(f"{node.outputs[0].name}_axes", np.array(axes, np.int64)))
    elif axes:
        attrs["axes"] = axes
    _q_out(g, node, _float(g, node, op, ins, attrs))


def _requantize(g, node):
    _q_out(g, node, _dq(g, node.inputs[0], node))


def _lut(g, node):
    x, table = node.inputs
    y = node.outputs[0]
    wide = g.create_node("Cast", [x], [(f"{x.name}_i32", TensorType("i32", x.type.shape))],
                         {"to": TensorProto.INT32}, before=node).outputs[0]
    idx = g.create_node("Add", [wide, g.add_constant(f"{x.name}_offset", np.int32(128))],
                        [(f"{x.name}_index", wide.type)], before=node).outputs[0]
    out = g.create_node("Gather", [table, idx], [(f"{y.name}_lut", y.type)], {"axis": 0},
                        name=node.name, before=node).outputs[0]
    y.replace_all_uses_with(out)
    node.drop_inputs()
    g.remove_node(node)
    g.rename(out, y.name)


CONVERT = {"QConv": _qconv, "QMatMul": _qmatmul, "QAdd": _qadd,
           "QMul": _binary("Mul"), "QReduceSum": _qreduce_sum, "Requantize": _requantize,
           "Lut": _lut}


def to_qdq(graph: Graph) -> Graph:
    """A copy of a quantized graph with standard ONNX operators only."""
    g = graph.copy()
    for node in list(g.nodes):
        if node.domain == "npuc" and node.op_type in CONVERT:
            CONVERT[node.op_type](g, node)
    for v in list(g.constants.values()):
        if not v.uses and v not in g.outputs:
            g.remove_constant(v)
    uses_fp8 = any(getattr(v.type, "dtype", None) is not None and v.type.dtype.name.startswith("f8")
                   for v in g.values())
    if uses_fp8 and (g.opset.get("", 0) or 0) < 19:
        g.opset[""] = 19  # float8 QuantizeLinear/DequantizeLinear need opset 19
    g.opset.pop("npuc", None)
    g.meta.pop("qdq_cache", None)
    return g


def export_qdq(graph: Graph, path: str | os.PathLike | None = None):
    """Write the quantized graph as a QDQ ONNX model (and return the ModelProto)."""
    from npuc.compiler.frontend.onnx_export import export_onnx

    return export_onnx(to_qdq(graph), path)

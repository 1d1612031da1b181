"""onnxruntime's quantized operators rewritten in QDQ form, and its dynamic and
weight-only quantized operators as float operators on dequantized weights.

A QOperator node (QLinearConv, QLinearAdd, QGemm, ...) becomes DequantizeLinear on its
activation inputs, the float operator and a QuantizeLinear to its output scale: the QDQ
form of the same computation, which the quantizer reads back with the model's own scales
(:mod:`npuc.compiler.quantize.prequantized`). Constant quantized weights and biases
become float constants that remember their scales and zero points (``meta["quant"]``),
so the integer weights are rebuilt exactly.

DynamicQuantizeMatMul becomes DynamicQuantizeLinear, MatMulInteger and the scaling of its
int32 result (onnxruntime's arithmetic, in the ONNX operators quantize_dynamic writes);
MatMulIntegerToFloat a MatMul of the dequantized operands; MatMulNBits a MatMul by its dequantized weights;
DynamicQuantizeLSTM an LSTM with dequantized weights (onnxruntime also quantizes the
hidden state at each step, which this leaves out: results differ by that rounding).
"""

from __future__ import annotations

import numpy as np

from npuc.ir.types import QuantParams, TensorType

from .contrib_registry import EXPAND, expansion, rank

QDQ_FORMS = {"QLinearConv": "Conv", "QLinearAdd": "Add", "QLinearMul": "Mul",
             "QLinearSigmoid": "Sigmoid", "QLinearLeakyRelu": "LeakyRelu",
             "QLinearGlobalAveragePool": "GlobalAveragePool", "QLinearConcat": "Concat",
             "QGemm": "Gemm"}


def dequantized_const(b, x, scale, zp, axis=None, hint=None):
    """A float constant for the quantized constant ``x`` (or None when it is not one),
    remembering its scale and zero point."""
    if x.const is None or scale.const is None or (zp is not None and zp.const is None):
        return None
    s = scale.const.astype(np.float32)
    z = np.zeros((), x.const.dtype) if zp is None else zp.const
    shape = [1] * x.const.ndim
    if s.size > 1:
        axis = (axis if axis is not None else 1) % x.const.ndim
        shape[axis] = s.size
    else:
        axis = None
    w = (x.const.astype(np.float64) - z.astype(np.float64).reshape(shape if z.size > 1 else ())) \
        * s.astype(np.float64).reshape(shape if s.size > 1 else ())
    v = b.const(w.astype(np.float32), name=hint or f"{x.name}_dequantized")
    v.meta["quant"] = QuantParams(s.reshape(-1) if axis is not None else s.reshape(()),
                                  z.reshape(-1) if axis is not None else z.reshape(()), axis)
    return v


def dq(b, x, scale, zp, axis=None):
    """The float value of quantized ``x``: a constant, or a DequantizeLinear."""
    c = dequantized_const(b, x, scale, zp, axis)
    if c is not None:
        return c
    attrs = {"axis": axis} if axis is not None else {}
    return b.op("DequantizeLinear", x, scale, zp, out_type=TensorType(
        "f32", x.type.shape if isinstance(x.type, TensorType) else None), **attrs)


def q(b, y, scale, zp, out):
    return b.op("QuantizeLinear", y, scale, zp, out_type=out.type)


def _consts(*values):
    return all(v is None or v.const is not None for v in values)


def _scales_const(node):
    """The rewrite needs constant scales and zero points (onnxruntime's tools write them)."""
    ins = node.inputs
    idx = {"QLinearConv": (1, 2, 4, 5, 6, 7), "QLinearAdd": (1, 2, 4, 5, 6, 7),
           "QLinearMul": (1, 2, 4, 5, 6, 7), "QLinearSigmoid": (1, 2, 3, 4),
           "QLinearLeakyRelu": (1, 2, 3, 4), "QLinearGlobalAveragePool": (1, 2, 3, 4),
           "QGemm": (1, 2, 4, 5, 7, 8)}.get(node.op_type, ())
    if node.op_type == "QLinearConcat":
        idx = (0, 1, *[i for i in range(3, len(ins)) if i % 3 != 2])
    if not _consts(*[node.input(i) for i in idx]):
        return "its scales or zero points are not constant"
    return None


def _opt(node, i):
    return node.input(i)


@expansion("QLinearConv", _scales_const)
def _qlinear_conv(node, b):
    x, sx, zx, w, sw, zw, sy, zy = node.inputs[:8]
    attrs = {k: v for k, v in node.attrs.items() if k != "channels_last"}
    last = node.attrs.get("channels_last", 0)
    xf = dq(b, x, sx, zx)
    if last:
        r = rank(x)
        xf = b.op("Transpose", xf, perm=[0, r - 1, *range(1, r - 1)])
    wf = dq(b, w, sw, zw, 0)
    ins = [xf, wf]
    bias = _opt(node, 8)
    if bias is not None:
        ins.append(_bias(b, bias, sx, sw))
    y = b.op("Conv", *ins, **attrs)
    if last:
        y = b.op("Transpose", y, perm=[0, *range(2, rank(x)), 1])
    return [q(b, y, sy, zy, node.outputs[0])]


def _bias(b, bias, sx, sw):
    """An int32 bias at scale ``s_x * s_w`` as a float constant (or computed)."""
    if bias.const is not None and sx.const is not None and sw.const is not None:
        s = sx.const.astype(np.float64).reshape(()) * sw.const.astype(np.float64).reshape(-1)
        return b.const((bias.const.astype(np.float64) * s).astype(np.float32),
                       name=f"{bias.name}_dequantized")
    scale = b.op("Mul", sx, sw)
    return b.op("Mul", b.op("Cast", bias, to=1), scale)


def _binary(node, b):
    a = dq(b, node.inputs[0], node.inputs[1], _opt(node, 2))
    c = dq(b, node.inputs[3], node.inputs[4], _opt(node, 5))
    y = b.op(QDQ_FORMS[node.op_type], a, c)
    return [q(b, y, node.inputs[6], _opt(node, 7), node.outputs[0])]


expansion("QLinearAdd", _scales_const)(_binary)
expansion("QLinearMul", _scales_const)(_binary)


def _unary(node, b):
    x = dq(b, node.inputs[0], node.inputs[1], _opt(node, 2))
    attrs = {"alpha": node.attrs.get("alpha", 0.01)} if node.op_type == "QLinearLeakyRelu" \
        else {}
    y = b.op(QDQ_FORMS[node.op_type], x, **attrs)
    return [q(b, y, node.inputs[3], _opt(node, 4), node.outputs[0])]


expansion("QLinearSigmoid", _scales_const)(_unary)
expansion("QLinearLeakyRelu", _scales_const)(_unary)


@expansion("QLinearGlobalAveragePool", _scales_const)
def _qlinear_gap(node, b):
    x = dq(b, node.inputs[0], node.inputs[1], node.inputs[2])
    last, r = node.attrs.get("channels_last", 0), rank(node.inputs[0])
    if last:
        x = b.op("Transpose", x, perm=[0, r - 1, *range(1, r - 1)])
    y = b.op("GlobalAveragePool", x)
    if last:
        y = b.op("Transpose", y, perm=[0, *range(2, r), 1])
    return [q(b, y, node.inputs[3], node.inputs[4], node.outputs[0])]


@expansion("QLinearConcat", _scales_const)
def _qlinear_concat(node, b):
    parts = [dq(b, *node.inputs[i:i + 3]) for i in range(2, len(node.inputs), 3)]
    y = b.op("Concat", *parts, axis=node.attrs["axis"])
    return [q(b, y, node.inputs[0], node.inputs[1], node.outputs[0])]


@expansion("QGemm", _scales_const)
def _qgemm(node, b):
    a, sa, za, w, sw, zw = node.inputs[:6]
    af = dq(b, a, sa, za)
    wf = dq(b, w, sw, zw, 0 if node.attrs.get("transB", 0) else 1)
    ins = [af, wf]
    if _opt(node, 6) is not None:
        ins.append(_bias(b, node.inputs[6], sa, sw))
    attrs = {k: node.attrs[k] for k in ("alpha", "transA", "transB") if k in node.attrs}
    y = b.op("Gemm", *ins, **attrs)
    if _opt(node, 7) is None:
        return [y]
    return [q(b, y, node.inputs[7], _opt(node, 8), node.outputs[0])]


def _matmul_float(b, a, w, bias, out):
    y = b.op("MatMul", a, w)
    return b.op("Add", y, bias, out_type=out.type) if bias is not None else y


@expansion("MatMulIntegerToFloat")
def _matmul_integer_to_float(node, b):
    a = dq(b, node.inputs[0], node.inputs[2], _opt(node, 4))
    w = dq(b, node.inputs[1], node.inputs[3], _opt(node, 5), 1)
    return [_matmul_float(b, a, w, _opt(node, 6), node.outputs[0])]


@expansion("DynamicQuantizeMatMul",
           lambda n: None if _consts(n.input(1), n.input(2), n.input(3)) else
           "its weights are not constant")
def _dynamic_quantize_matmul(node, b):
    # onnxruntime's own arithmetic: the int32 product of the quantized operands, scaled
    # (so a chip with int8 runs the product on its MAC array)
    aq, sa, za = b.op("DynamicQuantizeLinear", node.inputs[0], outputs=3)
    acc = b.op("MatMulInteger", aq, node.inputs[1], za, _opt(node, 3))
    scale = b.op("Mul", sa, node.inputs[2])
    y = b.op("Mul", b.op("Cast", acc, to=1), scale)
    bias = _opt(node, 4)
    return [b.op("Add", y, bias, out_type=node.outputs[0].type) if bias is not None else y]


@expansion("MatMulNBits", lambda n: None if _consts(*n.inputs[1:5]) and n.input(4) is None
           else "its weights are not constant (or it has g_idx)")
def _matmul_nbits(node, b):
    from npuc.compiler.executor.kernels.contrib_quant import matmul_nbits

    eye = np.eye(node.attrs["K"], dtype=np.float32)  # A = I gives the dequantized W^T
    ins = [eye, node.inputs[1].const, node.inputs[2].const,
           None if node.input(3) is None else node.inputs[3].const]

    class Ctx:
        num_outputs = 1

        def describe(self):
            return node.describe()

    wt = matmul_nbits(ins, node.attrs, Ctx())[0]
    w = b.const(wt.astype(np.float32), name=f"{node.inputs[1].name}_dequantized")
    return [_matmul_float(b, node.inputs[0], w, _opt(node, 5), node.outputs[0])]


@expansion("DynamicQuantizeLSTM",
           lambda n: None if _consts(*n.inputs[1:3], *n.inputs[8:12]) else
           "its weights are not constant")
def _dynamic_quantize_lstm(node, b):
    def weights(i, si):
        v, s, z = node.inputs[i], node.inputs[si].const, node.inputs[si + 1].const
        dirs = v.const.shape[0]
        wf = (v.const.astype(np.float32) - z.reshape(dirs, 1, -1).astype(np.float32)) * \
            s.reshape(dirs, 1, -1).astype(np.float32)
        return b.const(np.ascontiguousarray(wf.transpose(0, 2, 1)), name=f"{v.name}_dequantized")

    ins = [node.inputs[0], weights(1, 8), weights(2, 10), *node.inputs[3:8]]
    outs = b.op("LSTM", *ins, outputs=len(node.outputs), **node.attrs)
    return outs if isinstance(outs, list) else [outs]


def _ms_qdq(node, b):
    op = "QuantizeLinear" if node.op_type == "QuantizeLinear" else "DequantizeLinear"
    s = node.inputs[1]
    attrs = {}
    if s.const is None or s.const.size > 1:
        attrs["axis"] = node.attrs.get("axis", 1)
    return [b.op(op, *node.inputs, out_type=node.outputs[0].type, **attrs)]


def _qdq_check(node):
    s = node.input(1)
    if (s.const is None or s.const.size > 1) and (node.graph.opset_of("") or 17) < 13:
        return "per-axis scales need opset 13 or later"
    return None


expansion("QuantizeLinear", _qdq_check)(_ms_qdq)
expansion("DequantizeLinear", _qdq_check)(_ms_qdq)

QUANTIZED_CONTRIB = tuple(op for op in EXPAND if op.startswith("Q") or "Quantize" in op)


def _qlinear_matmul(node, b):
    a = dq(b, node.inputs[0], node.inputs[1], node.inputs[2])
    w = dq(b, node.inputs[3], node.inputs[4], node.inputs[5], -1)
    return [q(b, b.op("MatMul", a, w), node.inputs[6], node.inputs[7], node.outputs[0])]


def _onnx_qlinear_check(node):
    idx = (1, 2, 4, 5, 6, 7)
    if not _consts(*[node.input(i) for i in idx]):
        return "its scales or zero points are not constant"
    return None


# the ONNX operators of QOperator models, in QDQ form (for pre-quantized compilation)
ONNX_QOPERATORS = {"QLinearConv": (_onnx_qlinear_check, _qlinear_conv),
                   "QLinearMatMul": (_onnx_qlinear_check, _qlinear_matmul)}


def expand_onnx_qoperators(graph) -> int:
    """Rewrite ONNX QLinearConv and QLinearMatMul nodes in QDQ form; how many."""
    from .pattern import Match
    from .rewrite import Rule, apply_rules

    class ExpandQOperator(Rule):
        """An ONNX QOperator node becomes DequantizeLinear, the float op, QuantizeLinear."""

        roots = tuple(ONNX_QOPERATORS)
        quiet = True

        def match(self, node):
            if not node.domain and node.op_type in ONNX_QOPERATORS:
                yield Match(node, covered=[(node, True)])

        def check(self, m):
            return ONNX_QOPERATORS[m.root.op_type][0](m.root)

        def rewrite(self, m, b):
            return ONNX_QOPERATORS[m.root.op_type][1](m.root, b)

    return apply_rules(graph, [ExpandQOperator()], "prequantized")

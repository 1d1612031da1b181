"""Schemas of onnxruntime's contrib operators (domain ``com.microsoft``).

onnx.defs does not know them, so they are declared here with npuc's :func:`register_op`:
their inputs, attributes (with onnxruntime's defaults) and output types, so that a model
that onnxruntime's exporters, optimizer or quantizers wrote imports and infers shapes.
Their meaning is in the kernels (``executor/kernels/contrib*.py``); the optimizer
rewrites them into standard and npuc operators (``passes/contrib_expand.py``).
"""

from __future__ import annotations

from npuc.ir.schema import FLOAT, FLOATS, INT, INTS, STRING, STRINGS, custom_ops, register_op
from npuc.ir.types import TensorType, broadcast_shapes

MS = "com.microsoft"


def _t(node, i):
    v = node.input(i)
    return v.type if v is not None and isinstance(v.type, TensorType) else None


def _shape(node, i):
    t = _t(node, i)
    return None if t is None or t.shape is None else tuple(t.shape)


def _same(node):
    t = _t(node, 0)
    return [None if t is None else t.with_quant(None)] + [None] * (len(node.outputs) - 1)


def _bcast(node):
    a, b = _shape(node, 0), _shape(node, 1)
    if a is None or b is None:
        return [None]
    return [TensorType(_t(node, 0).dtype, broadcast_shapes(a, b))]


def _conv_dims(x, w, attrs, nd):
    strides = attrs.get("strides") or [1] * nd
    dil = attrs.get("dilations") or [1] * nd
    pads = attrs.get("pads") or [0] * (2 * nd)
    auto = attrs.get("auto_pad", "NOTSET")
    out = []
    for i in range(nd):
        d, k = x[i], w[i]
        if not isinstance(d, int) or not isinstance(k, int):
            out.append(None)
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            out.append(-(-d // strides[i]))
        else:
            p = 0 if auto == "VALID" else pads[i] + pads[i + nd]
            out.append((d + p - dil[i] * (k - 1) - 1) // strides[i] + 1)
    return out


def _conv(x_index, w_index, nhwc=False, dtype_of=None):
    def infer(node):
        xs, ws = _shape(node, x_index), _shape(node, w_index)
        if xs is None or ws is None:
            return [None]
        nd = len(xs) - 2
        last = nhwc or node.attrs.get("channels_last", 0)
        spatial = xs[1:-1] if last else xs[2:]
        dims = _conv_dims(spatial, ws[2:], node.attrs, nd)
        shape = (xs[0], *dims, ws[0]) if last else (xs[0], ws[0], *dims)
        return [TensorType(_t(node, x_index if dtype_of is None else dtype_of).dtype, shape)]
    return infer


def _matmul_dims(a, b):
    a, b = list(a), list(b)
    if len(a) == 1:
        a = [1] + a
    if len(b) == 1:
        b = b + [1]
    return (*broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])), a[-2], b[-1])


def _matmul(dtype_from=None, dtype=None):
    def infer(node):
        a, b = _shape(node, 0), _shape(node, 1)
        if a is None or b is None:
            return [None]
        dt = dtype or _t(node, dtype_from if dtype_from is not None else 0).dtype
        return [TensorType(dt, _matmul_dims(a, b))]
    return infer


def _fused_matmul(node):
    a, b = _shape(node, 0), _shape(node, 1)
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return [None]
    from npuc.compiler.executor.kernels.contrib import fused_matmul_operand

    a = fused_matmul_operand(a, node.attrs.get("transA", 0), node.attrs.get("transBatchA", 0))
    b = fused_matmul_operand(b, node.attrs.get("transB", 0), node.attrs.get("transBatchB", 0))
    return [TensorType(_t(node, 0).dtype, _matmul_dims(a, b))]


def _norm(node):
    t = _t(node, 0)
    if t is None or t.shape is None:
        return [None] * len(node.outputs)
    stat = TensorType("f32", (*t.shape[:-1], 1))
    return [t, stat, stat, t][:len(node.outputs)]


def _attention(node):
    x, w = _shape(node, 0), _shape(node, 1)
    if x is None or w is None:
        return [None] * len(node.outputs)
    sizes = node.attrs.get("qkv_hidden_sizes") or [w[1] // 3] * 3
    heads = node.attrs["num_heads"]
    past = _shape(node, 4)
    total = x[1] + past[3] if past is not None and isinstance(x[1], int) else \
        (x[1] if past is None else None)
    out = [TensorType(_t(node, 0).dtype, (x[0], x[1], sizes[2]))]
    if len(node.outputs) > 1:
        out.append(TensorType(_t(node, 0).dtype, (2, x[0], heads, total, sizes[0] // heads)))
    return out


def _mha(node):
    q, k, v = _shape(node, 0), _shape(node, 1), _shape(node, 2)
    if q is None or v is None or len(q) != 3 or len(v) != 3:
        return [None] * len(node.outputs)
    heads = node.attrs["num_heads"]
    out = [TensorType(_t(node, 0).dtype, (q[0], q[1], v[2]))]
    past = _shape(node, 6)
    for i in (1, 2):
        if len(node.outputs) > i:
            src = k if i == 1 else v
            kv = src[1] if past is None else src[1] + past[2]
            out.append(TensorType(_t(node, 0).dtype, (q[0], heads, kv, src[2] // heads)))
    return out + [None] * (len(node.outputs) - len(out))


def _gqa(node):
    q, k = _shape(node, 0), _shape(node, 1)
    if q is None or k is None:
        return [None] * len(node.outputs)
    n, kvn = node.attrs["num_heads"], node.attrs["kv_num_heads"]
    head = q[2] // n
    total = _t(node, 6)
    past = _shape(node, 3)
    kv = k[1] if past is None else (k[1] + past[2] if isinstance(k[1], int) else None)
    if total is not None and node.input(6).const is not None:
        kv = max(int(node.input(6).const.ravel()[0]), 0 if past is None else past[2])
    out = [TensorType(_t(node, 0).dtype, (q[0], q[1], n * head))]
    out += [TensorType(_t(node, 0).dtype, (q[0], kvn, kv, head))] * 2
    return out[:len(node.outputs)]


def _qgemm(node):
    a, b = _shape(node, 0), _shape(node, 3)
    if a is None or b is None:
        return [None]
    m = a[1] if node.attrs.get("transA", 0) else a[0]
    n = b[0] if node.attrs.get("transB", 0) else b[1]
    y = _t(node, 8)
    return [TensorType(y.dtype if y is not None else "f32", (m, n))]


def _global_pool(node):
    x = _shape(node, 0)
    if x is None:
        return [None]
    if node.attrs.get("channels_last", 0):
        return [TensorType(_t(node, 0).dtype, (x[0], *[1] * (len(x) - 2), x[-1]))]
    return [TensorType(_t(node, 0).dtype, (x[0], x[1], *[1] * (len(x) - 2)))]


def _qconcat(node):
    shapes = [_shape(node, i) for i in range(2, len(node.inputs), 3)]
    if any(s is None for s in shapes):
        return [None]
    axis = node.attrs["axis"] % len(shapes[0])
    parts = [s[axis] for s in shapes]
    size = sum(parts) if all(isinstance(p, int) for p in parts) else None
    shape = (*shapes[0][:axis], size, *shapes[0][axis + 1:])
    return [TensorType(_t(node, 2).dtype, shape)]


def _nbits(node):
    a = _shape(node, 0)
    return [None] if a is None else [TensorType(_t(node, 0).dtype, (*a[:-1], node.attrs["N"]))]


def _lstm(node):
    x, w = _shape(node, 0), _shape(node, 1)
    if x is None or w is None:
        return [None] * len(node.outputs)
    dirs, hidden = w[0], node.attrs.get("hidden_size") or w[2] // 4
    return [TensorType("f32", (x[0], dirs, x[1], hidden))] + \
        [TensorType("f32", (dirs, x[1], hidden))] * 2


def _quantize(node):
    x, zp = _t(node, 0), _t(node, 2)
    if x is None:
        return [None]
    return [TensorType(zp.dtype if zp is not None else "u8", x.shape)]


def _dequantize(node):
    x, s = _t(node, 0), _t(node, 1)
    return [None] if x is None else [TensorType(s.dtype if s else "f32", x.shape)]


# attributes onnxruntime requires (the others without a default are optional)
REQUIRED = {"num_heads": ("Attention", "MultiHeadAttention", "GroupQueryAttention"),
            "kv_num_heads": ("GroupQueryAttention",), "is_inner_broadcast": ("BiasSoftmax",),
            "axis": ("QLinearConcat",), "K": ("MatMulNBits",), "N": ("MatMulNBits",),
            "block_size": ("MatMulNBits",)}


def _ms(op, inputs, optional=0, outputs=("Y",), infer=_same, attrs=None, n_out=None,
        variadic=False, doc=""):
    attrs = attrs or {}
    optional_attrs = tuple(a for a in attrs if op not in REQUIRED.get(a, ()))
    register_op(op, MS, inputs=inputs, outputs=outputs, optional_inputs=optional,
                variadic=variadic, attrs=attrs, infer=infer, num_outputs=n_out,
                optional_attrs=optional_attrs, doc=doc or f"onnxruntime contrib {op}")


_CONV = {"auto_pad": (STRING, "NOTSET"), "dilations": (INTS, None), "group": (INT, 1),
         "kernel_shape": (INTS, None), "pads": (INTS, None), "strides": (INTS, None)}
_EPS = {"epsilon": (FLOAT, 1e-12)}
_NORM_OUT = ("output", "mean", "inv_std_var", "input_skip_bias_sum")

_ms("FusedConv", ("X", "W", "B", "Z"), 2, infer=_conv(0, 1),
    attrs={**_CONV, "activation": (STRING, None), "activation_params": (FLOATS, None)})
_ms("NhwcConv", ("X", "W", "B"), 1, infer=_conv(0, 1, nhwc=True), attrs=_CONV)
_ms("FusedMatMul", ("A", "B"), infer=_fused_matmul,
    attrs={"alpha": (FLOAT, 1.0), "transA": (INT, 0), "transB": (INT, 0),
           "transBatchA": (INT, 0), "transBatchB": (INT, 0)})
_ms("Gelu", ("X",))
_ms("FastGelu", ("X", "bias"), 1)
_ms("BiasGelu", ("A", "B"), infer=_bcast)
_ms("QuickGelu", ("X",), attrs={"alpha": (FLOAT, 1.702)})
_ms("BiasAdd", ("X", "bias", "skip"))
_ms("BiasSoftmax", ("data", "bias"), infer=_bcast,
    attrs={"axis": (INT, 1), "is_inner_broadcast": (INT, None)})
_ms("SkipLayerNormalization", ("input", "skip", "gamma", "beta", "bias"), 2,
    outputs=_NORM_OUT, n_out=(1, 4), infer=_norm, attrs=_EPS)
_ms("SkipSimplifiedLayerNormalization", ("input", "skip", "gamma", "bias"), 1,
    outputs=_NORM_OUT, n_out=(1, 4), infer=_norm, attrs=_EPS)
_LN = {"axis": (INT, -1), "epsilon": (FLOAT, 1e-5), "stash_type": (INT, 1)}
_ms("LayerNormalization", ("X", "Scale", "B"), 1, outputs=("Y", "Mean", "InvStdDev"),
    n_out=(1, 3), infer=_norm, attrs=_LN)
_ms("SimplifiedLayerNormalization", ("X", "scale"), outputs=("Y", "inv_std_var"),
    n_out=(1, 2), infer=_norm, attrs=_LN)
_ms("Attention", ("input", "weights", "bias", "mask_index", "past", "attention_bias",
                  "past_sequence_length"), 5, outputs=("output", "present"), n_out=(1, 2),
    infer=_attention,
    attrs={"num_heads": (INT, None), "qkv_hidden_sizes": (INTS, None),
           "unidirectional": (INT, 0), "scale": (FLOAT, None),
           "mask_filter_value": (FLOAT, -10000.0), "do_rotary": (INT, 0),
           "past_present_share_buffer": (INT, 0), "rotary_embedding_dim": (INT, 0)})
_ms("MultiHeadAttention", ("query", "key", "value", "bias", "key_padding_mask",
                           "attention_bias", "past_key", "past_value",
                           "past_sequence_length", "cache_indirection"), 9,
    outputs=("output", "present_key", "present_value", "qk"), n_out=(1, 4), infer=_mha,
    attrs={"num_heads": (INT, None), "unidirectional": (INT, 0), "scale": (FLOAT, None),
           "mask_filter_value": (FLOAT, -10000.0)})
_ms("GroupQueryAttention", ("query", "key", "value", "past_key", "past_value", "seqlens_k",
                            "total_sequence_length", "cos_cache", "sin_cache",
                            "position_ids", "attention_bias", "head_sink"), 6,
    outputs=("output", "present_key", "present_value"), n_out=(1, 3), infer=_gqa,
    attrs={"num_heads": (INT, None), "kv_num_heads": (INT, None), "scale": (FLOAT, None),
           "local_window_size": (INT, -1), "do_rotary": (INT, 0),
           "rotary_interleaved": (INT, 0), "softcap": (FLOAT, 0.0),
           "smooth_softmax": (INT, 0)})
_ms("RotaryEmbedding", ("input", "position_ids", "cos_cache", "sin_cache"),
    attrs={"interleaved": (INT, 0), "num_heads": (INT, 0), "rotary_embedding_dim": (INT, 0),
           "scale": (FLOAT, 1.0), "is_packed_batching": (INT, 0)})
_ms("QLinearConv", ("x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point",
                    "y_scale", "y_zero_point", "B"), 1, infer=_conv(0, 3, dtype_of=7),
    attrs={**_CONV, "channels_last": (INT, 0)})
_QBIN = ("A", "A_scale", "A_zero_point", "B", "B_scale", "B_zero_point", "C_scale",
         "C_zero_point")
for _op in ("QLinearAdd", "QLinearMul"):
    _ms(_op, _QBIN, infer=lambda n: [None if _bcast(n)[0] is None else TensorType(
        _t(n, 0).dtype, broadcast_shapes(_shape(n, 0), _shape(n, 3)))])
_QUN = ("X", "X_scale", "X_zero_point", "Y_scale", "Y_zero_point")
_ms("QLinearSigmoid", _QUN, 1)
_ms("QLinearLeakyRelu", _QUN, 1, attrs={"alpha": (FLOAT, 0.01)})
_ms("QLinearGlobalAveragePool", ("X", "x_scale", "x_zero_point", "y_scale", "y_zero_point"),
    infer=_global_pool, attrs={"channels_last": (INT, 0)})
_ms("QLinearConcat", ("Y_scale", "Y_zero_point", "inputs"), variadic=True, infer=_qconcat,
    attrs={"axis": (INT, None)})
_ms("QGemm", ("A", "a_scale", "a_zero_point", "B", "b_scale", "b_zero_point", "C",
              "y_scale", "y_zero_point"), 3, infer=_qgemm,
    attrs={"alpha": (FLOAT, 1.0), "transA": (INT, 0), "transB": (INT, 0)})
_ms("DynamicQuantizeMatMul", ("A", "B", "b_scale", "b_zero_point", "bias"), 2,
    infer=_matmul(dtype="f32"))
_ms("MatMulIntegerToFloat", ("A", "B", "a_scale", "b_scale", "a_zero_point",
                             "b_zero_point", "bias"), 3, infer=_matmul(dtype_from=2))
_ms("MatMulNBits", ("A", "B", "scales", "zero_points", "g_idx", "bias"), 3, infer=_nbits,
    attrs={"K": (INT, None), "N": (INT, None), "bits": (INT, 4), "block_size": (INT, None),
           "accuracy_level": (INT, 0), "weight_prepacked": (INT, 0)})
_ms("DynamicQuantizeLSTM", ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c",
                            "P", "W_scale", "W_zero_point", "R_scale", "R_zero_point"),
    outputs=("Y", "Y_h", "Y_c"), n_out=(0, 3), infer=_lstm,
    attrs={"activation_alpha": (FLOATS, None), "activation_beta": (FLOATS, None),
           "activations": (STRINGS, None), "clip": (FLOAT, None),
           "direction": (STRING, "forward"), "hidden_size": (INT, None),
           "input_forget": (INT, 0)})
_ms("QuantizeLinear", ("x", "y_scale", "y_zero_point"), 1, infer=_quantize,
    attrs={"axis": (INT, 1)})
_ms("DequantizeLinear", ("x", "x_scale", "x_zero_point"), 1, infer=_dequantize,
    attrs={"axis": (INT, 1)})

CONTRIB_OPS = tuple(sorted(op for (d, op) in custom_ops() if d == MS))


def _in_onnx_domain(node, opset: int) -> bool:
    """onnxruntime registers SimplifiedLayerNormalization, and LayerNormalization before
    ONNX had it (opset 17), in the ONNX domain itself."""
    if node.domain not in ("", "ai.onnx"):
        return False
    return node.op_type == "SimplifiedLayerNormalization" or \
        (node.op_type == "LayerNormalization" and opset < 17)


def onnx_domain_to_contrib(proto):
    """``proto``, or a copy whose onnxruntime operators written in the ONNX domain are in
    ``com.microsoft`` (where npuc declares them), the domain imported when missing."""
    import onnx

    opset = next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                 17)
    if not any(_in_onnx_domain(n, opset) for n in proto.graph.node):
        return proto
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    for node in copy.graph.node:
        if _in_onnx_domain(node, opset):
            node.domain = MS
    if not any(o.domain == MS for o in copy.opset_import):
        copy.opset_import.append(onnx.helper.make_opsetid(MS, 1))
    return copy

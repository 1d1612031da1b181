"""Schemas of onnxruntime's contrib operators (domain ``com.microsoft``).

onnx.defs does not know them, so they are declared here with npuc's :func:`register_op`:
their inputs, attributes (with onnxruntime's defaults) and output types, so that a model
that onnxruntime's exporters, optimizer or quantizers wrote imports and infers shapes.
Their meaning is in the kernels (``executor/kernels/contrib*.py``); the optimizer
rewrites them into standard and npuc operators (``passes/contrib_expand.py``).
"""

from __future__ import annotations

from npuc.ir.schema import FLOAT, FLOATS, INT, INTS, STRING, STRINGS, custom_ops, register_op

from .contrib_infer import (
    attention,
    bcast,
    conv,
    dequantize,
    fused_matmul,
    global_pool,
    gqa,
    lstm,
    matmul,
    mha,
    nbits,
    norm,
    qbinary,
    qconcat,
    qgemm,
    quantize,
    same,
)

MS = "com.microsoft"

# attributes onnxruntime requires (the others without a default are optional)
REQUIRED = {"num_heads": ("Attention", "MultiHeadAttention", "GroupQueryAttention"),
            "kv_num_heads": ("GroupQueryAttention",), "is_inner_broadcast": ("BiasSoftmax",),
            "axis": ("QLinearConcat",), "K": ("MatMulNBits",), "N": ("MatMulNBits",),
            "block_size": ("MatMulNBits",)}


def _ms(op, inputs, optional=0, outputs=("Y",), infer=same, attrs=None, n_out=None,
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

_ms("FusedConv", ("X", "W", "B", "Z"), 2, infer=conv(0, 1),
    attrs={**_CONV, "activation": (STRING, None), "activation_params": (FLOATS, None)})
_ms("NhwcConv", ("X", "W", "B"), 1, infer=conv(0, 1, nhwc=True), attrs=_CONV)
_ms("FusedMatMul", ("A", "B"), infer=fused_matmul,
    attrs={"alpha": (FLOAT, 1.0), "transA": (INT, 0), "transB": (INT, 0),
           "transBatchA": (INT, 0), "transBatchB": (INT, 0)})
_ms("Gelu", ("X",))
_ms("FastGelu", ("X", "bias"), 1)
_ms("BiasGelu", ("A", "B"), infer=bcast)
_ms("QuickGelu", ("X",), attrs={"alpha": (FLOAT, 1.702)})
_ms("BiasAdd", ("X", "bias", "skip"))
_ms("BiasSoftmax", ("data", "bias"), infer=bcast,
    attrs={"axis": (INT, 1), "is_inner_broadcast": (INT, None)})
_ms("SkipLayerNormalization", ("input", "skip", "gamma", "beta", "bias"), 2,
    outputs=_NORM_OUT, n_out=(1, 4), infer=norm, attrs=_EPS)
_ms("SkipSimplifiedLayerNormalization", ("input", "skip", "gamma", "bias"), 1,
    outputs=_NORM_OUT, n_out=(1, 4), infer=norm, attrs=_EPS)
_LN = {"axis": (INT, -1), "epsilon": (FLOAT, 1e-5), "stash_type": (INT, 1)}
_ms("LayerNormalization", ("X", "Scale", "B"), 1, outputs=("Y", "Mean", "InvStdDev"),
    n_out=(1, 3), infer=norm, attrs=_LN)
_ms("SimplifiedLayerNormalization", ("X", "scale"), outputs=("Y", "inv_std_var"),
    n_out=(1, 2), infer=norm, attrs=_LN)
_ms("Attention", ("input", "weights", "bias", "mask_index", "past", "attention_bias",
                  "past_sequence_length"), 5, outputs=("output", "present"), n_out=(1, 2),
    infer=attention,
    attrs={"num_heads": (INT, None), "qkv_hidden_sizes": (INTS, None),
           "unidirectional": (INT, 0), "scale": (FLOAT, None),
           "mask_filter_value": (FLOAT, -10000.0), "do_rotary": (INT, 0),
           "past_present_share_buffer": (INT, 0), "rotary_embedding_dim": (INT, 0)})
_ms("MultiHeadAttention", ("query", "key", "value", "bias", "key_padding_mask",
                           "attention_bias", "past_key", "past_value",
                           "past_sequence_length", "cache_indirection"), 9,
    outputs=("output", "present_key", "present_value", "qk"), n_out=(1, 4), infer=mha,
    attrs={"num_heads": (INT, None), "unidirectional": (INT, 0), "scale": (FLOAT, None),
           "mask_filter_value": (FLOAT, -10000.0)})
_ms("GroupQueryAttention", ("query", "key", "value", "past_key", "past_value", "seqlens_k",
                            "total_sequence_length", "cos_cache", "sin_cache",
                            "position_ids", "attention_bias", "head_sink"), 6,
    outputs=("output", "present_key", "present_value"), n_out=(1, 3), infer=gqa,
    attrs={"num_heads": (INT, None), "kv_num_heads": (INT, None), "scale": (FLOAT, None),
           "local_window_size": (INT, -1), "do_rotary": (INT, 0),
           "rotary_interleaved": (INT, 0), "softcap": (FLOAT, 0.0),
           "smooth_softmax": (INT, 0)})
_ms("RotaryEmbedding", ("input", "position_ids", "cos_cache", "sin_cache"),
    attrs={"interleaved": (INT, 0), "num_heads": (INT, 0), "rotary_embedding_dim": (INT, 0),
           "scale": (FLOAT, 1.0), "is_packed_batching": (INT, 0)})
_ms("QLinearConv", ("x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point",
                    "y_scale", "y_zero_point", "B"), 1, infer=conv(0, 3, dtype_of=7),
    attrs={**_CONV, "channels_last": (INT, 0)})
_QBIN = ("A", "A_scale", "A_zero_point", "B", "B_scale", "B_zero_point", "C_scale",
         "C_zero_point")
for _op in ("QLinearAdd", "QLinearMul"):
    _ms(_op, _QBIN, infer=qbinary)
_QUN = ("X", "X_scale", "X_zero_point", "Y_scale", "Y_zero_point")
_ms("QLinearSigmoid", _QUN, 1)
_ms("QLinearLeakyRelu", _QUN, 1, attrs={"alpha": (FLOAT, 0.01)})
_ms("QLinearGlobalAveragePool", ("X", "x_scale", "x_zero_point", "y_scale", "y_zero_point"),
    infer=global_pool, attrs={"channels_last": (INT, 0)})
_ms("QLinearConcat", ("Y_scale", "Y_zero_point", "inputs"), variadic=True, infer=qconcat,
    attrs={"axis": (INT, None)})
_ms("QGemm", ("A", "a_scale", "a_zero_point", "B", "b_scale", "b_zero_point", "C",
              "y_scale", "y_zero_point"), 3, infer=qgemm,
    attrs={"alpha": (FLOAT, 1.0), "transA": (INT, 0), "transB": (INT, 0)})
_ms("DynamicQuantizeMatMul", ("A", "B", "b_scale", "b_zero_point", "bias"), 2,
    infer=matmul(dtype="f32"))
_ms("MatMulIntegerToFloat", ("A", "B", "a_scale", "b_scale", "a_zero_point",
                             "b_zero_point", "bias"), 3, infer=matmul(dtype_from=2))
_ms("MatMulNBits", ("A", "B", "scales", "zero_points", "g_idx", "bias"), 3, infer=nbits,
    attrs={"K": (INT, None), "N": (INT, None), "bits": (INT, 4), "block_size": (INT, None),
           "accuracy_level": (INT, 0), "weight_prepacked": (INT, 0)})
_ms("DynamicQuantizeLSTM", ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c",
                            "P", "W_scale", "W_zero_point", "R_scale", "R_zero_point"),
    outputs=("Y", "Y_h", "Y_c"), n_out=(0, 3), infer=lstm,
    attrs={"activation_alpha": (FLOATS, None), "activation_beta": (FLOATS, None),
           "activations": (STRINGS, None), "clip": (FLOAT, None),
           "direction": (STRING, "forward"), "hidden_size": (INT, None),
           "input_forget": (INT, 0)})
_ms("QuantizeLinear", ("x", "y_scale", "y_zero_point"), 1, infer=quantize,
    attrs={"axis": (INT, 1)})
_ms("DequantizeLinear", ("x", "x_scale", "x_zero_point"), 1, infer=dequantize,
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

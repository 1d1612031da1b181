"""Small models made of onnxruntime's contrib operators, as its transformer optimizer and
fusions write them, for compile tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS = "com.microsoft"


def _const(rng, name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _model(nodes, inputs, outputs, inits, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    return model


def transformer_block(seq=8, hidden=32, heads=2) -> onnx.ModelProto:
    """Attention, SkipLayerNormalization, FusedMatMul, BiasGelu, FastGelu, QuickGelu,
    SimplifiedLayerNormalization, MultiHeadAttention, RotaryEmbedding and a prefill
    GroupQueryAttention, in the order a decoder block has them."""
    rng = np.random.default_rng(0)
    h4, half = 2 * hidden, hidden // heads // 2
    ang = np.arange(64)[:, None] / (10000 ** (np.arange(half) / half))[None, :]
    inits = [_const(rng, "wqkv", hidden, 3 * hidden), _const(rng, "bqkv", 3 * hidden),
             _const(rng, "gamma", hidden), _const(rng, "beta", hidden),
             _const(rng, "bias", hidden), _const(rng, "w1", h4, hidden),
             _const(rng, "b1", h4), _const(rng, "w2", h4, hidden), _const(rng, "b2", hidden),
             _const(rng, "g2", hidden),
             numpy_helper.from_array(np.arange(seq, dtype=np.int64)[None], "pos"),
             numpy_helper.from_array(np.cos(ang).astype(np.float32), "cos"),
             numpy_helper.from_array(np.sin(ang).astype(np.float32), "sin"),
             numpy_helper.from_array(np.array([seq - 1], np.int32), "seqlens"),
             numpy_helper.from_array(np.array(seq, np.int32), "total"),
             _const(rng, "wkv", hidden, hidden)]
    n = helper.make_node
    nodes = [
        n("Attention", ["x", "wqkv", "bqkv"], ["att"], domain=MS, num_heads=heads,
          unidirectional=1),
        n("SkipLayerNormalization", ["att", "x", "gamma", "beta", "bias"], ["ln"], domain=MS,
          epsilon=1e-5),
        n("FusedMatMul", ["ln", "w1"], ["mm1"], domain=MS, transB=1, alpha=0.5),
        n("BiasGelu", ["mm1", "b1"], ["act"], domain=MS),
        n("FastGelu", ["act"], ["act2"], domain=MS),
        n("MatMul", ["act2", "w2"], ["mm2"]),
        n("Add", ["mm2", "b2"], ["res"]),
        n("SimplifiedLayerNormalization", ["res", "g2"], ["rms"], epsilon=1e-6),
        n("QuickGelu", ["rms"], ["qg"], domain=MS),
        n("MultiHeadAttention", ["qg", "qg", "ln"], ["mha"], domain=MS, num_heads=heads),
        n("RotaryEmbedding", ["mha", "pos", "cos", "sin"], ["rot"], domain=MS,
          num_heads=heads),
        n("MatMul", ["rot", "wkv"], ["kv"]),
        n("GroupQueryAttention", ["rot", "kv", "kv", "", "", "seqlens", "total"],
          ["y"], domain=MS, num_heads=heads, kv_num_heads=heads),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, seq, hidden])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, seq, hidden])
    return _model(nodes, [x], [y], inits, "transformer_block")


def conv_block() -> onnx.ModelProto:
    """FusedConv (with and without Z), NhwcConv, BiasAdd and BiasSoftmax (the last three
    run only on GPUs in onnxruntime, so verify compares with npuc's float execution)."""
    rng = np.random.default_rng(1)
    inits = [_const(rng, "w1", 8, 3, 3, 3), _const(rng, "b1", 8), _const(rng, "w2", 8, 8, 3, 3),
             _const(rng, "w3", 8, 8, 1, 1), _const(rng, "b3", 8), _const(rng, "bias", 8)]
    n = helper.make_node
    nodes = [
        n("FusedConv", ["x", "w1", "b1"], ["c1"], domain=MS, activation="Relu",
          pads=[1, 1, 1, 1]),
        n("FusedConv", ["c1", "w2", "", "c1"], ["c2"], domain=MS, activation="LeakyRelu",
          activation_params=[0.1], pads=[1, 1, 1, 1]),
        n("BiasSoftmax", ["c2", "c1"], ["sm"], domain=MS, axis=-1, is_inner_broadcast=0),
        n("Transpose", ["sm"], ["nhwc"], perm=[0, 2, 3, 1]),
        n("NhwcConv", ["nhwc", "w3", "b3"], ["c3"], domain=MS),
        n("BiasAdd", ["c3", "bias", "nhwc"], ["y"], domain=MS),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])
    return _model(nodes, [x], [y], inits, "conv_block")


def decode_step(hidden=32, heads=2, past=5) -> onnx.ModelProto:
    """A GroupQueryAttention decode step with a past key/value cache (kept as it is, on
    the CPU)."""
    rng = np.random.default_rng(2)
    head = hidden // heads
    inits = [_const(rng, "wk", hidden, hidden),
             numpy_helper.from_array(np.array([past], np.int32), "seqlens"),
             numpy_helper.from_array(np.array(past + 1, np.int32), "total")]
    n = helper.make_node
    nodes = [n("MatMul", ["x", "wk"], ["k"]),
             n("GroupQueryAttention", ["x", "k", "k", "pk", "pv", "seqlens", "total"],
               ["y", "nk", "nv"], domain=MS, num_heads=heads, kv_num_heads=heads)]
    f = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("x", f, [1, 1, hidden]),
              helper.make_tensor_value_info("pk", f, [1, heads, past, head]),
              helper.make_tensor_value_info("pv", f, [1, heads, past, head])]
    outputs = [helper.make_tensor_value_info("y", f, [1, 1, hidden]),
               helper.make_tensor_value_info("nk", f, [1, heads, past + 1, head]),
               helper.make_tensor_value_info("nv", f, [1, heads, past + 1, head])]
    return _model(nodes, inputs, outputs, inits, "decode_step")

"""Small one-node models of onnxruntime's contrib operators, with random inputs.

Each case is ``(id, op, inputs, attrs, outputs, constants)``: ``inputs`` maps an input
name to an array (``None`` for an omitted optional input); names in ``constants`` become
initializers; ``outputs`` is the number of outputs. Integer ops are compared exactly,
float ops within float32 rounding.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

R = np.random.default_rng(0)


def f(*shape, scale=1.0):
    return (R.standard_normal(shape) * scale).astype(np.float32)


def u8(*shape):
    return R.integers(0, 256, shape).astype(np.uint8)


def i8(*shape):
    return R.integers(-128, 128, shape).astype(np.int8)


def w8(*shape):
    """int8 weights small enough that onnxruntime's uint8 x int8 kernels on x86 (16-bit
    pair sums) do not saturate, as in real quantized weights."""
    return R.integers(-40, 41, shape).astype(np.int8)


def s(v):
    return np.array(v, np.float32)


def z(v, dt=np.uint8):
    return np.array(v, dt)


def _rope_cache(max_pos, half):
    inv = 1.0 / (10000 ** (np.arange(half) / half))
    ang = np.arange(max_pos)[:, None] * inv[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def _nbits(n, k, block, bits=4):
    blocks = -(-k // block)
    packed = R.integers(0, 256, (n, blocks, block * bits // 8)).astype(np.uint8)
    return packed, (R.random(n * blocks) * 0.1 + 0.01).astype(np.float32)


COS, SIN = _rope_cache(32, 4)
COS8, SIN8 = _rope_cache(32, 8)
NB, NBS = _nbits(6, 32, 16)
NBZ = R.integers(0, 256, (6, 1)).astype(np.uint8)
ACT = {"activation": "LeakyRelu", "activation_params": [0.2]}

CASES = [
    ("fusedconv-relu-z", "FusedConv", {"X": f(1, 3, 6, 6), "W": f(4, 3, 3, 3), "B": f(4),
                                       "Z": f(1, 4, 6, 6)},
     {"activation": "Relu", "pads": [1, 1, 1, 1]}, 1, ()),
    ("fusedconv-leaky", "FusedConv", {"X": f(1, 2, 5, 5), "W": f(4, 2, 3, 3)},
     {**ACT, "strides": [2, 2]}, 1, ()),
    ("fusedconv-clip", "FusedConv", {"X": f(1, 2, 5, 5), "W": f(2, 1, 3, 3), "B": f(2)},
     {"activation": "Clip", "activation_params": [-0.5, 0.5], "group": 2}, 1, ()),
    ("nhwcconv", "NhwcConv", {"X": f(1, 6, 6, 3), "W": f(4, 3, 3, 3), "B": f(4)},
     {"pads": [1, 1, 1, 1], "strides": [2, 1]}, 1, ()),
    ("fusedmatmul", "FusedMatMul", {"A": f(2, 5, 3), "B": f(2, 4, 3)},
     {"alpha": 0.5, "transB": 1}, 1, ()),
    ("fusedmatmul-transa", "FusedMatMul", {"A": f(3, 5), "B": f(3, 4)}, {"transA": 1}, 1, ()),
    ("fusedmatmul-transbatch", "FusedMatMul", {"A": f(2, 3, 4), "B": f(3, 4, 6)},
     {"transBatchA": 1}, 1, ()),
    ("gelu", "Gelu", {"X": f(2, 7, scale=3)}, {}, 1, ()),
    ("fastgelu", "FastGelu", {"X": f(2, 8, scale=3), "bias": f(8)}, {}, 1, ()),
    ("biasgelu", "BiasGelu", {"A": f(2, 8, scale=3), "B": f(8)}, {}, 1, ()),
    ("quickgelu", "QuickGelu", {"X": f(3, 5, scale=3)}, {"alpha": 1.5}, 1, ()),
    ("biasadd", "BiasAdd", {"X": f(2, 3, 4), "bias": f(4), "skip": f(2, 3, 4)}, {}, 1, ()),
    ("biassoftmax", "BiasSoftmax", {"data": f(2, 2, 3, 5), "bias": f(1, 1, 3, 5)},
     {"axis": -1, "is_inner_broadcast": 0}, 1, ()),
    ("skiplayernorm", "SkipLayerNormalization",
     {"input": f(2, 3, 8), "skip": f(2, 3, 8), "gamma": f(8), "beta": f(8), "bias": f(8)},
     {"epsilon": 1e-5}, 4, ()),
    ("skipsimplified", "SkipSimplifiedLayerNormalization",
     {"input": f(2, 3, 8), "skip": f(2, 3, 8), "gamma": f(8)}, {}, 1, ()),
    # onnxruntime declares these two in the ONNX domain (LayerNormalization before opset 17)
    ("simplifiedlayernorm", "SimplifiedLayerNormalization", {"X": f(2, 3, 8), "scale": f(8)},
     {"epsilon": 1e-6}, 1, ()),
    ("layernorm", "LayerNormalization", {"X": f(2, 3, 8), "Scale": f(8), "B": f(8)},
     {"epsilon": 1e-5}, 1, ()),
    ("attention", "Attention", {"input": f(2, 4, 8), "weights": f(8, 24, scale=0.3),
                                "bias": f(24), "mask_index": np.array(
                                    [[1, 1, 1, 0], [1, 1, 1, 1]], np.int32)},
     {"num_heads": 2}, 2, ()),
    ("attention-causal", "Attention", {"input": f(1, 5, 8), "weights": f(8, 24, scale=0.3)},
     {"num_heads": 2, "unidirectional": 1}, 1, ()),
    ("mha", "MultiHeadAttention", {"query": f(2, 3, 8), "key": f(2, 5, 8),
                                   "value": f(2, 5, 8), "bias": f(24)},
     {"num_heads": 2}, 1, ()),
    ("mha-padding", "MultiHeadAttention", {"query": f(2, 3, 8), "key": f(2, 4, 8),
                                           "value": f(2, 4, 8), "bias": None,
                                           "key_padding_mask":
                                           np.array([2, 4], np.int32)},
     {"num_heads": 4, "scale": 0.3}, 1, ()),
    ("gqa-prefill", "GroupQueryAttention",
     {"query": f(1, 4, 32), "key": f(1, 4, 16), "value": f(1, 4, 16), "past_key": None,
      "past_value": None, "seqlens_k": np.array([3], np.int32),
      "total_sequence_length": np.array(4, np.int32)},
     {"num_heads": 4, "kv_num_heads": 2}, 3, ()),
    ("gqa-decode-rotary", "GroupQueryAttention",
     {"query": f(1, 1, 64), "key": f(1, 1, 32), "value": f(1, 1, 32),
      "past_key": f(1, 2, 3, 16), "past_value": f(1, 2, 3, 16),
      "seqlens_k": np.array([3], np.int32), "total_sequence_length": np.array(4, np.int32),
      "cos_cache": COS8, "sin_cache": SIN8},
     {"num_heads": 4, "kv_num_heads": 2, "do_rotary": 1}, 3, ()),
    ("rotary", "RotaryEmbedding", {"input": f(2, 3, 16), "position_ids": np.array(
        [[0, 1, 2], [4, 5, 6]], np.int64), "cos_cache": COS, "sin_cache": SIN},
     {"num_heads": 2}, 1, ()),
    ("rotary-interleaved-bnsh", "RotaryEmbedding",
     {"input": f(1, 2, 3, 8), "position_ids": np.array([2], np.int64), "cos_cache": COS,
      "sin_cache": SIN}, {"interleaved": 1}, 1, ()),
    ("qlinearconv", "QLinearConv",
     {"x": u8(1, 3, 5, 5), "x_scale": s(0.02), "x_zero_point": z(128), "w": w8(4, 3, 3, 3),
      "w_scale": s(0.01), "w_zero_point": z(0, np.int8), "y_scale": s(0.05),
      "y_zero_point": z(100), "B": R.integers(-500, 500, 4).astype(np.int32)},
     {"pads": [1, 1, 1, 1]}, 1, ("w", "w_scale", "w_zero_point", "B")),
    ("qlinearconv-nhwc", "QLinearConv",
     {"x": u8(1, 5, 5, 3), "x_scale": s(0.02), "x_zero_point": z(128), "w": w8(4, 3, 3, 3),
      "w_scale": s(0.01), "w_zero_point": z(0, np.int8), "y_scale": s(0.05),
      "y_zero_point": z(100)},
     {"channels_last": 1}, 1, ("w", "w_scale", "w_zero_point")),
    ("qlinearadd", "QLinearAdd",
     {"A": u8(2, 5), "A_scale": s(0.03), "A_zero_point": z(120), "B": u8(5),
      "B_scale": s(0.05), "B_zero_point": z(130), "C_scale": s(0.07), "C_zero_point": z(125)},
     {}, 1, ()),
    ("qlinearmul-i8", "QLinearMul",
     {"A": i8(2, 5), "A_scale": s(0.03), "A_zero_point": z(3, np.int8), "B": i8(2, 5),
      "B_scale": s(0.05), "B_zero_point": z(-2, np.int8), "C_scale": s(0.1),
      "C_zero_point": z(1, np.int8)}, {}, 1, ()),
    ("qlinearsigmoid", "QLinearSigmoid",
     {"X": u8(3, 7), "X_scale": s(0.05), "X_zero_point": z(128), "Y_scale": s(1 / 256),
      "Y_zero_point": z(0)}, {}, 1, ()),
    ("qlinearleakyrelu", "QLinearLeakyRelu",
     {"X": i8(3, 7), "X_scale": s(0.05), "X_zero_point": z(5, np.int8), "Y_scale": s(0.04),
      "Y_zero_point": z(-10, np.int8)}, {"alpha": 0.1}, 1, ()),
    ("qlinearglobalavgpool", "QLinearGlobalAveragePool",
     {"X": u8(1, 4, 5, 5), "x_scale": s(0.05), "x_zero_point": z(128), "y_scale": s(0.02),
      "y_zero_point": z(120)}, {}, 1, ()),
    ("qlinearconcat", "QLinearConcat",
     {"Y_scale": s(0.05), "Y_zero_point": z(128), "a": u8(1, 2, 3), "a_scale": s(0.05),
      "a_zero_point": z(128), "b": u8(1, 3, 3), "b_scale": s(0.03), "b_zero_point": z(100)},
     {"axis": 1}, 1, ()),
    ("qgemm-float", "QGemm",
     {"A": u8(3, 6), "a_scale": s(0.02), "a_zero_point": z(128), "B": w8(4, 6),
      "b_scale": s(0.01), "b_zero_point": z(0, np.int8),
      "C": R.integers(-300, 300, 4).astype(np.int32)}, {"transB": 1}, 1, ()),
    ("qgemm-quant", "QGemm",
     {"A": u8(3, 6), "a_scale": s(0.02), "a_zero_point": z(128), "B": w8(6, 4),
      "b_scale": s(0.01), "b_zero_point": z(0, np.int8), "C": None, "y_scale": s(0.03),
      "y_zero_point": z(110)}, {"alpha": 1.0}, 1, ()),
    ("dynamicquantizematmul", "DynamicQuantizeMatMul",
     {"A": f(3, 8), "B": w8(8, 5), "b_scale": s(0.02), "b_zero_point": z(0, np.int8),
      "bias": f(5)}, {}, 1, ()),
    ("matmulintegertofloat", "MatMulIntegerToFloat",
     {"A": u8(2, 3, 8), "B": w8(8, 5), "a_scale": s(0.02),
      "b_scale": (R.random(5) * 0.02 + 0.005).astype(np.float32),
      "a_zero_point": z(128), "b_zero_point": np.zeros(5, np.int8), "bias": f(5)},
     {}, 1, ()),
    ("matmulnbits", "MatMulNBits", {"A": f(2, 32), "B": NB, "scales": NBS},
     {"K": 32, "N": 6, "bits": 4, "block_size": 16}, 1, ("B", "scales")),
    ("matmulnbits-zp", "MatMulNBits", {"A": f(3, 32), "B": NB, "scales": NBS,
                                       "zero_points": NBZ},
     {"K": 32, "N": 6, "bits": 4, "block_size": 16}, 1, ("B", "scales", "zero_points")),
    ("quantizelinear", "QuantizeLinear", {"x": f(2, 4, scale=3), "y_scale": s(0.05),
                                          "y_zero_point": z(128)}, {}, 1, ()),
    ("dequantizelinear", "DequantizeLinear",
     {"x": i8(3, 4), "x_scale": np.array([0.1, 0.2, 0.3, 0.4], np.float32),
      "x_zero_point": np.array([0, 1, 2, 3], np.int8)}, {"axis": 1}, 1, ()),
]



def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _nhwc_reference(x, w, b):
    """Conv of the NCHW view, with onnxruntime on a standard Conv."""
    import onnxruntime as ort

    m = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], strides=[2, 1])],
        "c", [helper.make_tensor_value_info(n, 1, None) for n in "xwb"],
        [helper.make_tensor_value_info("y", 1, None)]),
        opset_imports=[helper.make_opsetid("", 17)])
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x.transpose(0, 3, 1, 2).copy(), "w": w, "b": b})[0]
    return [y.transpose(0, 2, 3, 1)]


# onnxruntime has these only for GPUs: the reference is their definition in numpy
REFERENCE = {
    "NhwcConv": lambda i: _nhwc_reference(i["X"], i["W"], i["B"]),
    "BiasAdd": lambda i: [i["X"] + i["bias"] + i["skip"]],
    "BiasSoftmax": lambda i: [_softmax(i["data"] + i["bias"], -1)],
}

LSTM_CASE = ("dynamicquantizelstm", "DynamicQuantizeLSTM",
             {"X": f(3, 2, 4), "W": w8(1, 4, 12), "R": w8(1, 3, 12), "B": f(1, 24, scale=0.1),
              "sequence_lens": None, "initial_h": None, "initial_c": None, "P": None,
              "W_scale": s([0.01]), "W_zero_point": np.zeros(1, np.int8),
              "R_scale": s([0.02]), "R_zero_point": np.zeros(1, np.int8)},
             {"hidden_size": 3}, 3, ("W", "R", "W_scale", "W_zero_point", "R_scale",
                                     "R_zero_point"))
CASES.append(LSTM_CASE)


ONNX_DOMAIN = {"SimplifiedLayerNormalization", "LayerNormalization"}


def build(op, inputs, attrs, outputs, constants, out_dtypes=None):
    """A one-node model of ``op`` and its feeds; outputs typed by ``out_dtypes`` (numpy
    dtype and rank, dimensions left for inference) or untyped."""
    names, graph_inputs, inits, feeds = [], [], [], {}
    for name, arr in inputs.items():
        if arr is None:
            names.append("")
            continue
        names.append(name)
        if name in constants:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            dt = helper.np_dtype_to_tensor_dtype(arr.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, dt, list(arr.shape)))
            feeds[name] = arr
    while names and not names[-1]:
        names.pop()
    outs = [f"y{i}" for i in range(outputs)]
    domain = "" if op in ONNX_DOMAIN else "com.microsoft"
    node = helper.make_node(op, names, outs, domain=domain, **attrs)
    if out_dtypes is None:
        out_infos = [helper.make_value_info(o, onnx.TypeProto()) for o in outs]
    else:
        out_infos = [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(d),
                                                   [None] * rank)
                     for o, (d, rank) in zip(outs, out_dtypes)]
    graph = helper.make_graph([node], op, graph_inputs, out_infos, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16 if domain == "" else 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model, feeds

"""The operators the passes create (domain ``npuc``): schema, kernel, decomposition.

- ``FusedConv(X, W, B?)``: Conv (same attributes), then an activation epilogue.
- ``FusedGemm(A, B, C?)``: Gemm (same attributes), then an activation epilogue.
- ``FusedMatMul(A, B, Bias?)``: MatMul, plus a bias broadcast on the last axis, then an
  activation epilogue.
- ``Gelu(X) {approximate}``: GELU for opsets before 20, which have no ONNX Gelu.
- ``Attention(Q, Kt, V, Mask?)``: ``softmax(Q @ Kt * scale [+ Mask]) @ V``, or with
  ``mask_mode = "select"``, the scores where Mask is false replaced by ``mask_fill``.
  ``Kt`` is the key already transposed, as exporters feed the first MatMul. With
  ``kv_repeat = n`` (grouped-query attention) Kt and V have one head per n heads of Q
  (axis -3), head h reading key head h // n; ``nan_to_zero = 1`` zeroes the
  probabilities of a row that is masked out entirely (NaN after the softmax), as torch's
  SDPA export does with ``Where(IsNaN(p), 0, p)``.

The epilogue is ``activation`` (empty for none: Relu, LeakyRelu, Clip, Sigmoid, Tanh,
HardSigmoid, HardSwish, Elu, Gelu, GeluTanh) with its numbers in ``activation_params``
(LeakyRelu and Elu: alpha; Clip: min, max; HardSigmoid: alpha, beta).

Each kernel composes the ONNX kernels, so a fused op computes what its parts did. Each
decomposition rebuilds the standard ONNX nodes, so that an optimized graph exports to a
model onnxruntime runs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from npuc.compiler.executor.kernels import get_kernel, kernel
from npuc.ir.schema import FLOAT, FLOATS, INT, INTS, STRING, register_op
from npuc.ir.types import TensorType, broadcast_shapes

EPILOGUE = {"activation": (STRING, ""), "activation_params": (FLOATS, [])}
ACTIVATION_PARAMS = {"Relu": 0, "LeakyRelu": 1, "Clip": 2, "Sigmoid": 0, "Tanh": 0,
                     "HardSigmoid": 2, "HardSwish": 0, "Elu": 1, "Gelu": 0, "GeluTanh": 0}
_OWN_ATTRS = ("activation", "activation_params")


# -- shape inference -------------------------------------------------------------------
def _t(node, i):
    v = node.input(i)
    return v.type if v is not None and isinstance(v.type, TensorType) else None


def _conv_shape(node):
    x, w = _t(node, 0), _t(node, 1)
    if x is None or w is None or x.shape is None or w.shape is None:
        return [None]
    n = len(x.shape) - 2
    a = node.attrs
    strides, dil = a.get("strides", [1] * n), a.get("dilations", [1] * n)
    pads, auto = a.get("pads", [0] * 2 * n), a.get("auto_pad", "NOTSET")
    kernel_shape = a.get("kernel_shape", list(w.shape[2:]))
    dims = []
    for i, d in enumerate(x.shape[2:]):
        k = kernel_shape[i]
        if not isinstance(d, int) or not isinstance(k, int):
            dims.append(None)
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            dims.append(-(-d // strides[i]))
        else:
            p = 0 if auto == "VALID" else pads[i] + pads[i + n]
            dims.append((d + p - dil[i] * (k - 1) - 1) // strides[i] + 1)
    return [TensorType(x.dtype, (x.shape[0], w.shape[0], *dims))]


def _gemm_shape(node):
    a, b = _t(node, 0), _t(node, 1)
    if a is None or b is None or a.shape is None or b.shape is None:
        return [None]
    m = a.shape[1] if node.attrs.get("transA", 0) else a.shape[0]
    n = b.shape[0] if node.attrs.get("transB", 0) else b.shape[1]
    return [TensorType(a.dtype, (m, n))]


def _matmul_shape(node):
    from npuc.ir.infer import _RULES

    return _RULES["MatMul"](node)


def _same_shape(node):
    t = _t(node, 0)
    return [None if t is None else t.with_quant(None)]


def _attention_shape(node):
    q, v = _t(node, 0), _t(node, 2)
    if q is None or v is None or q.shape is None or v.shape is None:
        return [None]
    vb = list(v.shape[:-2])
    repeat = node.attrs.get("kv_repeat", 1)
    if repeat != 1 and vb and isinstance(vb[-1], int):
        vb[-1] *= repeat
    batch = broadcast_shapes(q.shape[:-2], tuple(vb))
    return [TensorType(q.dtype, (*batch, q.shape[-2], v.shape[-1]))]


CONV_ATTRS = {"auto_pad": (STRING, "NOTSET"), "dilations": (INTS, []), "group": (INT, 1),
              "kernel_shape": (INTS, []), "pads": (INTS, []), "strides": (INTS, [])}
GEMM_ATTRS = {"alpha": (FLOAT, 1.0), "beta": (FLOAT, 1.0), "transA": (INT, 0),
              "transB": (INT, 0)}

register_op("FusedConv", inputs=("X", "W", "B"), optional_inputs=1,
            attrs={**CONV_ATTRS, **EPILOGUE}, infer=_conv_shape,
            doc="Conv followed by an activation epilogue.")
register_op("FusedGemm", inputs=("A", "B", "C"), optional_inputs=1,
            attrs={**GEMM_ATTRS, **EPILOGUE}, infer=_gemm_shape,
            doc="Gemm followed by an activation epilogue.")
register_op("FusedMatMul", inputs=("A", "B", "Bias"), optional_inputs=1,
            attrs=dict(EPILOGUE), infer=_matmul_shape,
            doc="MatMul plus a bias on the last axis, then an activation epilogue.")
register_op("Gelu", inputs=("X",), attrs={"approximate": (STRING, "none")},
            infer=_same_shape, doc="GELU, exact (erf) or with the tanh approximation.")
register_op("Attention", inputs=("Q", "Kt", "V", "Mask"), optional_inputs=1,
            attrs={"scale": (FLOAT, 1.0), "mask_mode": (STRING, "add"),
                   "mask_fill": (FLOAT, 0.0), "kv_repeat": (INT, 1), "nan_to_zero": (INT, 0)},
            infer=_attention_shape, doc="Scaled dot-product attention.")


# -- kernels ---------------------------------------------------------------------------
def _onnx_ctx(ctx):
    """The context an ONNX kernel expects (the graph's ONNX opset, not npuc's)."""
    graph = getattr(ctx.node, "graph", None)
    opset = (graph.opset_of("") if graph is not None else None) or 21
    return dataclasses.replace(ctx, opset=opset, num_outputs=1)


def activate(y: np.ndarray, name: str, params, ctx) -> np.ndarray:
    """Apply an epilogue activation with the ONNX kernels."""
    if not name:
        return y
    params = list(params)
    if name == "Clip":
        lo, hi = (np.asarray(p, dtype=y.dtype) for p in params)
        return get_kernel("Clip")([y, lo, hi], {}, ctx)[0]
    if name in ("Gelu", "GeluTanh"):
        approx = "tanh" if name == "GeluTanh" else "none"
        return get_kernel("Gelu")([y], {"approximate": approx}, ctx)[0]
    attrs = {}
    if name in ("LeakyRelu", "Elu"):
        attrs["alpha"] = params[0]
    elif name == "HardSigmoid":
        attrs["alpha"], attrs["beta"] = params
    return get_kernel(name)([y], attrs, ctx)[0]


def _split(attrs):
    return ({k: v for k, v in attrs.items() if k not in _OWN_ATTRS},
            attrs.get("activation", ""), attrs.get("activation_params", []))


@kernel("FusedConv", domain="npuc")
def fused_conv(inputs, attrs, ctx):
    ctx = _onnx_ctx(ctx)
    conv_attrs, act, params = _split(attrs)
    return [activate(get_kernel("Conv")(inputs, conv_attrs, ctx)[0], act, params, ctx)]


@kernel("FusedGemm", domain="npuc")
def fused_gemm(inputs, attrs, ctx):
    ctx = _onnx_ctx(ctx)
    gemm_attrs, act, params = _split(attrs)
    return [activate(get_kernel("Gemm")(inputs, gemm_attrs, ctx)[0], act, params, ctx)]


@kernel("FusedMatMul", domain="npuc")
def fused_matmul(inputs, attrs, ctx):
    ctx = _onnx_ctx(ctx)
    _, act, params = _split(attrs)
    y = get_kernel("MatMul")(inputs[:2], {}, ctx)[0]
    if len(inputs) > 2 and inputs[2] is not None:
        y = get_kernel("Add")([y, inputs[2]], {}, ctx)[0]
    return [activate(y, act, params, ctx)]


@kernel("Gelu", domain="npuc")
def gelu(inputs, attrs, ctx):
    return get_kernel("Gelu")(inputs, {"approximate": attrs.get("approximate", "none")},
                              _onnx_ctx(ctx))


@kernel("Attention", domain="npuc")
def attention(inputs, attrs, ctx):
    ctx = _onnx_ctx(ctx)
    q, kt, v = inputs[:3]
    mask = inputs[3] if len(inputs) > 3 else None
    repeat = attrs.get("kv_repeat", 1)
    if repeat != 1:
        kt, v = np.repeat(kt, repeat, axis=-3), np.repeat(v, repeat, axis=-3)
    mm = get_kernel("MatMul")
    s = mm([q, kt], {}, ctx)[0]
    scale = attrs.get("scale", 1.0)
    if scale != 1.0:
        s = s * np.asarray(scale, dtype=s.dtype)
    if mask is not None:
        if attrs.get("mask_mode", "add") == "select":
            s = np.where(mask, s, np.asarray(attrs.get("mask_fill", 0.0), dtype=s.dtype))
        else:
            s = s + mask
    p = get_kernel("Softmax")([s], {"axis": -1}, ctx)[0]
    if attrs.get("nan_to_zero", 0):
        p = np.where(np.isnan(p), p.dtype.type(0), p)
    return [mm([p, v], {}, ctx)[0]]


# -- decompositions back to ONNX -------------------------------------------------------
DECOMPOSE = {}


def decomposition(op_type):
    def register(fn):
        DECOMPOSE[("npuc", op_type)] = fn
        return fn

    return register


def emit_activation(b, y, name, params, opset):
    """The ONNX nodes of an epilogue activation applied to ``y``."""
    if not name:
        return y
    dt = y.type.dtype.numpy if isinstance(y.type, TensorType) else np.float32
    if name == "Clip":
        return b.op("Clip", y, b.const(np.asarray(params[0], dt)),
                    b.const(np.asarray(params[1], dt)), out_type=y.type)
    if name in ("Gelu", "GeluTanh"):
        return emit_gelu(b, y, "tanh" if name == "GeluTanh" else "none", opset)
    attrs = {}
    if name in ("LeakyRelu", "Elu"):
        attrs["alpha"] = float(params[0])
    elif name == "HardSigmoid":
        attrs = {"alpha": float(params[0]), "beta": float(params[1])}
    return b.op(name, y, out_type=y.type, **attrs)


def emit_gelu(b, x, approximate, opset):
    if opset >= 20:
        return b.op("Gelu", x, approximate=approximate, out_type=x.type)
    dt = x.type.dtype.numpy if isinstance(x.type, TensorType) else np.float32
    c = lambda value: b.const(np.asarray(value, dt))  # noqa: E731
    t = x.type
    if approximate == "tanh":
        cube = b.op("Mul", c(0.044715), b.op("Pow", x, c(3.0), out_type=t), out_type=t)
        inner = b.op("Mul", c(math.sqrt(2 / math.pi)), b.op("Add", x, cube, out_type=t),
                     out_type=t)
        one_plus = b.op("Add", c(1.0), b.op("Tanh", inner, out_type=t), out_type=t)
    else:
        erf = b.op("Erf", b.op("Div", x, c(math.sqrt(2)), out_type=t), out_type=t)
        one_plus = b.op("Add", erf, c(1.0), out_type=t)
    return b.op("Mul", b.op("Mul", x, c(0.5), out_type=t), one_plus, out_type=t)


def _opset(node):
    return node.graph.opset_of("") or 17


@decomposition("FusedConv")
def _conv(node, b):
    attrs, act, params = _split(node.attrs)
    y = b.op("Conv", *node.inputs, out_type=node.outputs[0].type, **attrs)
    return [emit_activation(b, y, act, params, _opset(node))]


@decomposition("FusedGemm")
def _gemm(node, b):
    attrs, act, params = _split(node.attrs)
    y = b.op("Gemm", *node.inputs, out_type=node.outputs[0].type, **attrs)
    return [emit_activation(b, y, act, params, _opset(node))]


@decomposition("FusedMatMul")
def _matmul(node, b):
    _, act, params = _split(node.attrs)
    t = node.outputs[0].type
    y = b.op("MatMul", *node.inputs[:2], out_type=t)
    if node.input(2) is not None:
        y = b.op("Add", y, node.inputs[2], out_type=t)
    return [emit_activation(b, y, act, params, _opset(node))]


@decomposition("Gelu")
def _gelu(node, b):
    return [emit_gelu(b, node.inputs[0], node.attrs.get("approximate", "none"), _opset(node))]


@decomposition("Attention")
def _attention(node, b):
    q, kt, v = node.inputs[:3]
    mask = node.input(3)
    repeat = node.attrs.get("kv_repeat", 1)
    if repeat != 1:
        kt, v = emit_repeat_heads(b, kt, repeat), emit_repeat_heads(b, v, repeat)
    s = b.op("MatMul", q, kt)
    dt = s.type.dtype.numpy if isinstance(s.type, TensorType) else np.float32
    scale = node.attrs.get("scale", 1.0)
    if scale != 1.0:
        s = b.op("Mul", s, b.const(np.asarray(scale, dt)), out_type=s.type)
    if mask is not None:
        if node.attrs.get("mask_mode", "add") == "select":
            fill = b.const(np.asarray(node.attrs.get("mask_fill", 0.0), dt))
            s = b.op("Where", mask, s, fill)
        else:
            s = b.op("Add", s, mask)
    p = b.op("Softmax", s, axis=-1, out_type=s.type)
    if node.attrs.get("nan_to_zero", 0):
        p = b.op("Where", b.op("IsNaN", p), b.const(np.asarray(0.0, dt)), p, out_type=s.type)
    return [b.op("MatMul", p, v, out_type=node.outputs[0].type)]


def emit_repeat_heads(b, x, n):
    """HF's ``repeat_kv`` on axis -3: Unsqueeze, Expand, Reshape."""
    shape = list(x.type.shape)
    rank = len(shape)
    axis = rank - 2
    y = b.op("Unsqueeze", x, b.const(np.asarray([axis], np.int64)))
    y = b.op("Expand", y, b.const(np.asarray(shape[:axis] + [n] + shape[axis:], np.int64)))
    out = shape[:axis - 1] + [shape[axis - 1] * n] + shape[axis:]
    return b.op("Reshape", y, b.const(np.asarray(out, np.int64)))


from . import decoder_ops, kvcache_op  # noqa: E402,F401  (RMSNorm, Rotary, GatedMLP, KVCacheWrite)

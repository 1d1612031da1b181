"""The npuc operators of quantized graphs, with their schemas.

All take and give int8 tensors whose types carry :class:`QuantParams`
(``real = scale * (q - zero_point)``); each names its output scale and zero point as
attributes (``y_scale``, ``y_zero_point``) so that the type can be inferred, and the
integer constants the hardware uses (``M0``, ``shift``) as inputs or attributes.

- ``QConv(X, W, B?, M0, Shift)``: int8 convolution, int32 accumulation of
  ``(X - x_zero_point) * W`` plus the int32 bias ``B`` (scale ``s_x * s_w``), then
  per-channel requantization ``MultiplyByQuantizedMultiplier(acc, M0[c], Shift[c])``,
  ``+ y_zero_point``, clamped to ``[qmin, qmax]`` (a fused ReLU is a higher ``qmin``).
  ``pads`` are explicit (``[begin..., end...]``).
- ``QMatMul(A, B, Bias?, M0, Shift)``: the same for ``(A - a_zp) @ (B - b_zp)``; ``M0`` and
  ``Shift`` have one entry per output column (per-channel weights) or one.
- ``QAdd(A, B)``, ``QMul(A, B)``: TFLite's int8 Add and Mul (multipliers as attributes).
- ``QReduceSum(X)``: the int32 sum of ``X - x_zero_point`` over ``axes`` (``keepdims`` as
  ONNX's), requantized by one multiplier (``mean = 1``: the multiplier divides by the
  count, as ReduceMean).
- ``Requantize(X)``: ``X`` to another scale and zero point.
- ``Lut(X, Table)``: ``Table[X + 128]``, a 256-entry lookup of any elementwise function.

The kernels (:mod:`.quantized_kernels`) are exact integer code.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.schema import FLOAT, INT, INTS, register_op
from npuc.ir.types import QuantParams, TensorType, broadcast_shapes

QUANT_OPS = ("QConv", "QMatMul", "QAdd", "QMul", "QReduceSum", "Requantize", "Lut")

_OUT = {"y_scale": (FLOAT, None), "y_zero_point": (INT, 0), "qmin": (INT, -128),
        "qmax": (INT, 127)}


def out_type(node, shape) -> TensorType:
    """The int8 output type of a quantized node, from its ``y_*`` attributes."""
    q = QuantParams(np.float32(node.attrs["y_scale"]),
                    np.int8(node.attrs.get("y_zero_point", 0)))
    return TensorType("i8", None if shape is None else tuple(shape), q)


def _shape(node, i):
    v = node.input(i)
    return getattr(v.type, "shape", None) if v is not None else None


def _infer_conv(node):
    xs, ws = _shape(node, 0), _shape(node, 1)
    if xs is None or ws is None:
        return [out_type(node, None)]
    nd = len(xs) - 2
    strides = node.attrs.get("strides") or [1] * nd
    dil = node.attrs.get("dilations") or [1] * nd
    pads = node.attrs.get("pads") or [0] * (2 * nd)
    spatial = []
    for d in range(nd):
        if not isinstance(xs[2 + d], int) or not isinstance(ws[2 + d], int):
            spatial.append(None)
            continue
        span = (ws[2 + d] - 1) * dil[d] + 1
        spatial.append((xs[2 + d] + pads[d] + pads[d + nd] - span) // strides[d] + 1)
    return [out_type(node, (xs[0], ws[0], *spatial))]


def _infer_matmul(node):
    a, b = _shape(node, 0), _shape(node, 1)
    if a is None or b is None:
        return [out_type(node, None)]
    batch = broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return [out_type(node, (*batch, a[-2], b[-1]))]


def _infer_binary(node):
    a, b = _shape(node, 0), _shape(node, 1)
    if a is None or b is None:
        return [out_type(node, None)]
    return [out_type(node, broadcast_shapes(tuple(a), tuple(b)))]


def _infer_reduce(node):
    x = _shape(node, 0)
    if x is None:
        return [out_type(node, None)]
    axes = {a % len(x) for a in node.attrs.get("axes") or range(len(x))}
    keep = node.attrs.get("keepdims", 1)
    return [out_type(node, [1 if i in axes else d for i, d in enumerate(x)
                            if keep or i not in axes])]


def _infer_unary(node):
    return [out_type(node, _shape(node, 0))]


register_op("QConv", inputs=("X", "W", "B", "M0", "Shift"), infer=_infer_conv,
            attrs={"x_zero_point": (INT, 0), "strides": (INTS, []), "pads": (INTS, []),
                   "dilations": (INTS, []), "group": (INT, 1), **_OUT},
            doc="int8 convolution with int32 accumulation and fixed-point requantization")
register_op("QMatMul", inputs=("A", "B", "Bias", "M0", "Shift"), infer=_infer_matmul,
            attrs={"a_zero_point": (INT, 0), "b_zero_point": (INT, 0), **_OUT},
            doc="int8 matrix product with int32 accumulation and fixed-point requantization")
_MULT = {"multiplier": (INT, None), "shift": (INT, None)}
register_op("QAdd", inputs=("A", "B"), infer=_infer_binary,
            attrs={"a_zero_point": (INT, 0), "b_zero_point": (INT, 0),
                   "a_multiplier": (INT, None), "a_shift": (INT, None),
                   "b_multiplier": (INT, None), "b_shift": (INT, None),
                   "y_multiplier": (INT, None), "y_shift": (INT, None),
                   "left_shift": (INT, 20), **_OUT},
            doc="TFLite int8 addition")
register_op("QMul", inputs=("A", "B"), infer=_infer_binary,
            attrs={"a_zero_point": (INT, 0), "b_zero_point": (INT, 0), **_MULT, **_OUT},
            doc="TFLite int8 multiplication")
register_op("QReduceSum", inputs=("X",), infer=_infer_reduce,
            attrs={"axes": (INTS, []), "keepdims": (INT, 1), "mean": (INT, 0),
                   "x_zero_point": (INT, 0),
                   **_MULT, **_OUT},
            doc="int8 sum over axes with int32 accumulation and fixed-point requantization")
register_op("Requantize", inputs=("X",), infer=_infer_unary,
            attrs={"x_zero_point": (INT, 0), **_MULT, **_OUT},
            doc="int8 to int8 at another scale")
register_op("Lut", inputs=("X", "Table"), infer=_infer_unary, attrs=dict(_OUT),
            doc="a 256-entry table lookup: Y = Table[X + 128]")

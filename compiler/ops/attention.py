"""Scaled dot-product attention as one operator (domain ``npuc``): schema, kernel,
decomposition.

``Attention(Q, Kt, V, Mask?)``: ``softmax(Q @ Kt * scale [+ Mask]) @ V``, or with
``mask_mode = "select"``, the scores where Mask is false replaced by ``mask_fill``.
``Kt`` is the key already transposed, as exporters feed the first MatMul. With
``kv_repeat = n`` (grouped-query attention) Kt and V have one head per n heads of Q
(axis -3), head h reading key head h // n; ``nan_to_zero = 1`` zeroes the
probabilities of a row that is masked out entirely (NaN after the softmax), as torch's
SDPA export does with ``Where(IsNaN(p), 0, p)``.
"""

from __future__ import annotations

import numpy as np

from npuc.compiler.executor.kernels import get_kernel, kernel
from npuc.ir.schema import FLOAT, INT, STRING, register_op
from npuc.ir.types import TensorType

from .emit import decomposition, emit_repeat_heads
from .fused import onnx_ctx
from .shapes import attention_shape

register_op("Attention", inputs=("Q", "Kt", "V", "Mask"), optional_inputs=1,
            attrs={"scale": (FLOAT, 1.0), "mask_mode": (STRING, "add"),
                   "mask_fill": (FLOAT, 0.0), "kv_repeat": (INT, 1), "nan_to_zero": (INT, 0)},
            infer=attention_shape, doc="Scaled dot-product attention.")


@kernel("Attention", domain="npuc")
def attention(inputs, attrs, ctx):
    # imported here: the Numba kernels load only when a node runs, not with the schemas
    from npuc.compiler.executor.kernels import vecmath
    from npuc.compiler.executor.kernels.attention import attention32

    ctx = onnx_ctx(ctx)
    q, kt, v = inputs[:3]
    mask = inputs[3] if len(inputs) > 3 else None
    repeat = attrs.get("kv_repeat", 1)
    if repeat != 1:
        kt, v = np.repeat(kt, repeat, axis=-3), np.repeat(v, repeat, axis=-3)
    select = attrs.get("mask_mode", "add") == "select"
    if (vecmath.fast() and q.dtype == kt.dtype == v.dtype == np.float32 and q.ndim >= 2
            and kt.ndim >= 2 and v.ndim >= 2
            and (mask is None or mask.dtype == (np.bool_ if select else np.float32))):
        return [attention32(q, kt, v, mask, attrs.get("scale", 1.0), select,
                            attrs.get("mask_fill", 0.0), bool(attrs.get("nan_to_zero", 0)))]
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

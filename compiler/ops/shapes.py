"""Output types of npuc's operators from their inputs and attributes (the ``infer`` of
their schemas), and the pieces onnxruntime's contrib operators share with them."""

from __future__ import annotations

from npuc.ir.types import TensorType, broadcast_shapes


def input_type(node, i):
    """The tensor type of input ``i`` (None when absent or not a tensor)."""
    v = node.input(i)
    return v.type if v is not None and isinstance(v.type, TensorType) else None


def input_shape(node, i):
    """The shape of input ``i`` as a tuple (None when unknown)."""
    t = input_type(node, i)
    return None if t is None or t.shape is None else tuple(t.shape)


def same_shape(node):
    """The type of input 0 without its quantization (one output)."""
    t = input_type(node, 0)
    return [None if t is None else t.with_quant(None)]


def conv_dims(spatial, kernel, attrs, nd: int) -> list:
    """The spatial output sizes of a convolution or pooling (None where unknown)."""
    strides = attrs.get("strides") or [1] * nd
    dil = attrs.get("dilations") or [1] * nd
    pads = attrs.get("pads") or [0] * (2 * nd)
    auto = attrs.get("auto_pad", "NOTSET")
    out = []
    for i in range(nd):
        d, k = spatial[i], kernel[i]
        if not isinstance(d, int) or not isinstance(k, int):
            out.append(None)
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            out.append(-(-d // strides[i]))
        else:
            p = 0 if auto == "VALID" else pads[i] + pads[i + nd]
            out.append((d + p - dil[i] * (k - 1) - 1) // strides[i] + 1)
    return out


def conv_shape(node):
    """FusedConv: the Conv's output type."""
    x, w = input_type(node, 0), input_type(node, 1)
    if x is None or w is None or x.shape is None or w.shape is None:
        return [None]
    n = len(x.shape) - 2
    kernel = node.attrs.get("kernel_shape") or list(w.shape[2:])
    return [TensorType(x.dtype, (x.shape[0], w.shape[0],
                                 *conv_dims(x.shape[2:], kernel, node.attrs, n)))]


def gemm_shape(node):
    """FusedGemm: the Gemm's output type."""
    a, b = input_type(node, 0), input_type(node, 1)
    if a is None or b is None or a.shape is None or b.shape is None:
        return [None]
    m = a.shape[1] if node.attrs.get("transA", 0) else a.shape[0]
    n = b.shape[0] if node.attrs.get("transB", 0) else b.shape[1]
    return [TensorType(a.dtype, (m, n))]


def matmul_shape(node):
    """FusedMatMul: the MatMul's output type."""
    from npuc.ir.infer import _RULES

    return _RULES["MatMul"](node)


def attention_shape(node):
    """Attention: Q's batch and rows, V's columns."""
    q, v = input_type(node, 0), input_type(node, 2)
    if q is None or v is None or q.shape is None or v.shape is None:
        return [None]
    vb = list(v.shape[:-2])
    repeat = node.attrs.get("kv_repeat", 1)
    if repeat != 1 and vb and isinstance(vb[-1], int):
        vb[-1] *= repeat
    batch = broadcast_shapes(q.shape[:-2], tuple(vb))
    return [TensorType(q.dtype, (*batch, q.shape[-2], v.shape[-1]))]

"""Output types of onnxruntime's contrib operators, from their inputs and attributes
(the ``infer`` of each schema in :mod:`.contrib_schemas`)."""

from __future__ import annotations

from npuc.compiler.ops.shapes import conv_dims
from npuc.compiler.ops.shapes import input_shape as _shape
from npuc.compiler.ops.shapes import input_type as _t
from npuc.ir.types import TensorType, broadcast_shapes


def same(node):
    t = _t(node, 0)
    return [None if t is None else t.with_quant(None)] + [None] * (len(node.outputs) - 1)


def bcast(node):
    a, b = _shape(node, 0), _shape(node, 1)
    if a is None or b is None:
        return [None]
    return [TensorType(_t(node, 0).dtype, broadcast_shapes(a, b))]


def conv(x_index, w_index, nhwc=False, dtype_of=None):
    def infer(node):
        xs, ws = _shape(node, x_index), _shape(node, w_index)
        if xs is None or ws is None:
            return [None]
        nd = len(xs) - 2
        last = nhwc or node.attrs.get("channels_last", 0)
        spatial = xs[1:-1] if last else xs[2:]
        dims = conv_dims(spatial, ws[2:], node.attrs, nd)
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


def matmul(dtype_from=None, dtype=None):
    def infer(node):
        a, b = _shape(node, 0), _shape(node, 1)
        if a is None or b is None:
            return [None]
        dt = dtype or _t(node, dtype_from if dtype_from is not None else 0).dtype
        return [TensorType(dt, _matmul_dims(a, b))]
    return infer


def fused_matmul(node):
    a, b = _shape(node, 0), _shape(node, 1)
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return [None]
    from npuc.compiler.executor.kernels.contrib import fused_matmul_operand

    a = fused_matmul_operand(a, node.attrs.get("transA", 0), node.attrs.get("transBatchA", 0))
    b = fused_matmul_operand(b, node.attrs.get("transB", 0), node.attrs.get("transBatchB", 0))
    return [TensorType(_t(node, 0).dtype, _matmul_dims(a, b))]


def norm(node):
    t = _t(node, 0)
    if t is None or t.shape is None:
        return [None] * len(node.outputs)
    stat = TensorType("f32", (*t.shape[:-1], 1))
    return [t, stat, stat, t][:len(node.outputs)]


def attention(node):
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


def mha(node):
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


def gqa(node):
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


def qgemm(node):
    a, b = _shape(node, 0), _shape(node, 3)
    if a is None or b is None:
        return [None]
    m = a[1] if node.attrs.get("transA", 0) else a[0]
    n = b[0] if node.attrs.get("transB", 0) else b[1]
    y = _t(node, 8)
    return [TensorType(y.dtype if y is not None else "f32", (m, n))]


def global_pool(node):
    x = _shape(node, 0)
    if x is None:
        return [None]
    if node.attrs.get("channels_last", 0):
        return [TensorType(_t(node, 0).dtype, (x[0], *[1] * (len(x) - 2), x[-1]))]
    return [TensorType(_t(node, 0).dtype, (x[0], x[1], *[1] * (len(x) - 2)))]


def qconcat(node):
    shapes = [_shape(node, i) for i in range(2, len(node.inputs), 3)]
    if any(s is None for s in shapes):
        return [None]
    axis = node.attrs["axis"] % len(shapes[0])
    parts = [s[axis] for s in shapes]
    size = sum(parts) if all(isinstance(p, int) for p in parts) else None
    shape = (*shapes[0][:axis], size, *shapes[0][axis + 1:])
    return [TensorType(_t(node, 2).dtype, shape)]


def nbits(node):
    a = _shape(node, 0)
    return [None] if a is None else [TensorType(_t(node, 0).dtype, (*a[:-1], node.attrs["N"]))]


def lstm(node):
    x, w = _shape(node, 0), _shape(node, 1)
    if x is None or w is None:
        return [None] * len(node.outputs)
    dirs, hidden = w[0], node.attrs.get("hidden_size") or w[2] // 4
    return [TensorType("f32", (x[0], dirs, x[1], hidden))] + \
        [TensorType("f32", (dirs, x[1], hidden))] * 2


def quantize(node):
    x, zp = _t(node, 0), _t(node, 2)
    if x is None:
        return [None]
    return [TensorType(zp.dtype if zp is not None else "u8", x.shape)]


def dequantize(node):
    x, s = _t(node, 0), _t(node, 1)
    return [None] if x is None else [TensorType(s.dtype if s else "f32", x.shape)]




def qbinary(node):
    """QLinearAdd and QLinearMul: the broadcast of A (input 0) and B (input 3)."""
    a, b = _shape(node, 0), _shape(node, 3)
    if a is None or b is None:
        return [None]
    return [TensorType(_t(node, 0).dtype, broadcast_shapes(a, b))]

"""onnxruntime's attention operators rewritten around ``npuc::Attention``.

Attention (packed QKV weights), MultiHeadAttention and GroupQueryAttention without a past
state become the projections (MatMul and Add, the packed weights split at compile time),
Reshape/Transpose into heads, one ``npuc::Attention`` (scale, an additive mask built
from the key padding mask, the causal mask or attention bias), and the heads merged
again. RotaryEmbedding with constant positions becomes Slice, Mul, Sub/Add and Concat
with the cos/sin rows gathered at compile time.

The configurations a fixed program cannot express (a past key/value cache, positions or
sequence lengths known only at run time, rotary inside the attention, mask forms other
than per-key) stay as they are and run with their kernel on the CPU.
"""

from __future__ import annotations

import numpy as np

from .contrib_registry import expansion, rank, used

I64 = np.int64


def _shape(v):
    t = v.type
    return tuple(t.shape) if t is not None and getattr(t, "shape", None) is not None else None


def _static(v):
    s = _shape(v)
    return s is not None and all(isinstance(d, int) for d in s)


def split_heads(b, x, n, key=False):
    """``[B, S, N*H]`` to ``[B, N, S, H]`` (``[B, N, H, S]`` for a transposed key)."""
    h = b.op("Reshape", x, b.const(np.array([0, 0, n, -1], I64)))
    return b.op("Transpose", h, perm=[0, 2, 3, 1] if key else [0, 2, 1, 3])


def merge_heads(b, y, out):
    t = b.op("Transpose", y, perm=[0, 2, 1, 3])
    return b.op("Reshape", t, b.const(np.array([0, 0, -1], I64)), out_type=out.type)


def padding_mask(b, mask, fill):
    """A ``[B, L]`` 0/1 key mask as an additive ``[B, 1, 1, L]`` bias."""
    keep = b.op("Cast", mask, to=1)
    drop = b.op("Sub", b.const(np.float32(1.0)), keep)
    bias = b.op("Mul", drop, b.const(np.float32(fill)))
    return b.op("Reshape", bias, b.const(np.array([0, 1, 1, -1], I64)))


def causal_mask(q_len, kv_len, fill):
    i = np.arange(q_len)[:, None] + (kv_len - q_len)
    return np.where(np.arange(kv_len)[None, :] <= i, 0.0, fill).astype(np.float32)


def _add(b, a, c):
    return c if a is None else a if c is None else b.op("Add", a, c)


def _attend(b, node, q, kt, v, mask, head_size, out):
    scale = node.attrs.get("scale") or 1.0 / float(np.sqrt(head_size))
    node.graph.opset.setdefault("npuc", 1)
    y = b.op("Attention", q, kt, v, mask, domain="npuc", scale=float(scale))
    return merge_heads(b, y, out)


def _mask_ok(mask):
    if mask is not None and rank(mask) != 2:
        return "its mask is not a [batch, keys] 0/1 mask"
    return None


def _attention_check(node):
    for i, what in ((4, "a past state"), (6, "a past sequence length")):
        if node.input(i) is not None:
            return f"it has {what}"
    if node.attrs.get("do_rotary", 0):
        return "it applies rotary embedding itself"
    if used(node, 1):
        return "its present state is used"
    w = node.input(1)
    if w.const is None or (node.input(2) is not None and node.input(2).const is None):
        return "its weights are not constant"
    if node.attrs.get("unidirectional", 0) and not _static(node.inputs[0]):
        return "the sequence length is not known"
    return _mask_ok(node.input(3))


@expansion("Attention", _attention_check)
def _attention(node, b):
    x, w, bias = node.inputs[0], node.inputs[1].const, node.input(2)
    n = node.attrs["num_heads"]
    sizes = list(node.attrs.get("qkv_hidden_sizes") or [w.shape[1] // 3] * 3)
    cuts = np.cumsum([0, *sizes])
    parts = []
    for i in range(3):
        y = b.op("MatMul", x, b.const(np.ascontiguousarray(w[:, cuts[i]:cuts[i + 1]])))
        if bias is not None:
            y = b.op("Add", y, b.const(bias.const[cuts[i]:cuts[i + 1]]))
        parts.append(y)
    fill = node.attrs.get("mask_filter_value", -10000.0)
    mask = padding_mask(b, node.inputs[3], fill) if node.input(3) is not None else None
    if node.attrs.get("unidirectional", 0):
        s = _shape(x)[1]
        mask = _add(b, mask, b.const(causal_mask(s, s, fill)))
    if node.input(5) is not None:
        mask = _add(b, mask, node.inputs[5])
    q, kt, v = split_heads(b, parts[0], n), split_heads(b, parts[1], n, True), \
        split_heads(b, parts[2], n)
    return [_attend(b, node, q, kt, v, mask, sizes[0] // n, node.outputs[0])]


def _mha_check(node):
    if any(node.input(i) is not None for i in (6, 7, 8, 9)):
        return "it has a past key/value state"
    if node.input(1) is None or rank(node.inputs[0]) != 3:
        return "its query, key and value are packed together"
    if rank(node.inputs[1]) != 3 or rank(node.inputs[2]) != 3:
        return "its key or value is given per head already"
    if node.input(3) is not None and node.inputs[3].const is None:
        return "its bias is not constant"
    if used(node, 3):
        return "its qk output is used"
    if node.attrs.get("unidirectional", 0) and not (_static(node.inputs[0]) and
                                                   _static(node.inputs[1])):
        return "the sequence lengths are not known"
    return _mask_ok(node.input(4))


@expansion("MultiHeadAttention", _mha_check)
def _mha(node, b):
    q, k, v = node.inputs[:3]
    n = node.attrs["num_heads"]
    if node.input(3) is not None:
        bias = node.inputs[3].const
        d, dk = _shape(q)[2], _shape(k)[2]
        q = b.op("Add", q, b.const(bias[:d]))
        k = b.op("Add", k, b.const(bias[d:d + dk]))
        v = b.op("Add", v, b.const(bias[d + dk:]))
    fill = node.attrs.get("mask_filter_value", -10000.0)
    mask = padding_mask(b, node.inputs[4], fill) if node.input(4) is not None else None
    if node.attrs.get("unidirectional", 0):
        mask = _add(b, mask, b.const(causal_mask(_shape(q)[1], _shape(k)[1], fill)))
    if node.input(5) is not None:
        mask = _add(b, mask, node.inputs[5])
    kh, vh = split_heads(b, k, n), split_heads(b, v, n)
    kt = b.op("Transpose", kh, perm=[0, 1, 3, 2])
    head = _shape(node.inputs[0])[2] // n if _shape(node.inputs[0]) else 1
    return [_attend(b, node, split_heads(b, q, n), kt, vh, mask, head, node.outputs[0]),
            kh, vh]


def _gqa_check(node):
    if node.input(3) is not None or node.input(4) is not None:
        return "it has a past key/value cache"
    if node.attrs.get("do_rotary", 0) or node.attrs.get("softcap", 0.0) or \
            node.attrs.get("local_window_size", -1) >= 0 or node.attrs.get("smooth_softmax", 0):
        return "it uses rotary, softcap, a local window or smooth softmax"
    if node.input(1) is None:
        return "its query, key and value are packed together"
    if any(node.input(i) is not None for i in range(9, 12)):
        return "it has position ids, attention bias or head sinks"
    lens, q = node.input(5), node.inputs[0]
    if lens.const is None or not _static(q) or \
            not np.all(lens.const.reshape(-1) + 1 == _shape(q)[1]):
        return "its sequence lengths are known only at run time or differ per batch"
    return None


@expansion("GroupQueryAttention", _gqa_check)
def _gqa(node, b):
    q, k, v = node.inputs[:3]
    n, kvn = node.attrs["num_heads"], node.attrs["kv_num_heads"]
    s = _shape(q)[1]
    kh, vh = split_heads(b, k, kvn), split_heads(b, v, kvn)

    def repeat(x):  # [B, kvN, S, H] -> [B, N, S, H], each kv head serving N/kvN heads
        if n == kvn:
            return x
        e = b.op("Unsqueeze", x, b.const(np.array([2], I64))) \
            if (node.graph.opset_of("") or 17) >= 13 else b.op("Unsqueeze", x, axes=[2])
        e = b.op("Tile", e, b.const(np.array([1, 1, n // kvn, 1, 1], I64)))
        return b.op("Reshape", e, b.const(np.array([0, n, s, -1], I64)))

    kt = b.op("Transpose", repeat(kh), perm=[0, 1, 3, 2])
    mask = b.const(causal_mask(s, s, float(np.finfo(np.float32).min)))
    head = _shape(q)[2] // n
    return [_attend(b, node, split_heads(b, q, n), kt, repeat(vh), mask, head,
                    node.outputs[0]), kh, vh]


def _rotary_check(node):
    pos, cos, sin = node.inputs[1:4]
    if pos.const is None or cos.const is None or sin.const is None:
        return "its positions or cos/sin caches are not constant"
    if not _static(node.inputs[0]):
        return "the input shape is not known"
    return None


@expansion("RotaryEmbedding", _rotary_check)
def _rotary(node, b):
    x = node.inputs[0]
    shape = _shape(x)
    cos_cache, sin_cache = node.inputs[2].const, node.inputs[3].const
    half = cos_cache.shape[1]
    bnsh = len(shape) == 4
    s = shape[2] if bnsh else shape[1]
    pos = node.inputs[1].const.astype(I64)
    if pos.size == 1:
        pos = np.broadcast_to(pos.reshape(-1)[0] + np.arange(s), (shape[0], s))
    # [B, 1, S, R/2] for BNSH, [B, S, 1, R/2] for the heads of a [B, S, N*H] input
    cos, sin = cos_cache[pos], sin_cache[pos]
    cos, sin = (c[:, None] if bnsh else c[:, :, None] for c in (cos, sin))
    xh = x if bnsh else b.op("Reshape", x, b.const(np.array(
        [0, 0, node.attrs.get("num_heads") or shape[2] // (2 * half), -1], I64)))
    head = shape[3] if bnsh else shape[2] // (node.attrs.get("num_heads") or
                                              shape[2] // (2 * half))
    inter = node.attrs.get("interleaved", 0)
    y = _rotate(b, xh, cos, sin, half, head, inter)
    return [y if bnsh else b.op("Reshape", y, b.const(np.array(shape, I64)),
                                out_type=node.outputs[0].type)]


def _slice(b, x, start, end, axis=-1):
    return b.op("Slice", x, b.const(np.array([start], I64)), b.const(np.array([end], I64)),
                b.const(np.array([axis], I64)))


def _rotate(b, x, cos, sin, half, head, interleaved):
    rot = _slice(b, x, 0, 2 * half) if 2 * half < head else x
    if interleaved:  # pairs (x0, x1), (x2, x3), ...: the last axis as [R/2, 2]
        pairs = b.op("Reshape", rot, b.const(np.array([0, 0, 0, half, 2], I64)))
        x1, x2 = _slice(b, pairs, 0, 1), _slice(b, pairs, 1, 2)
        cos, sin = cos[..., None], sin[..., None]
    else:
        x1, x2 = _slice(b, rot, 0, half), _slice(b, rot, half, 2 * half)
    c, s = b.const(cos.astype(np.float32)), b.const(sin.astype(np.float32))
    y1 = b.op("Sub", b.op("Mul", x1, c), b.op("Mul", x2, s))
    y2 = b.op("Add", b.op("Mul", x2, c), b.op("Mul", x1, s))
    y = b.op("Concat", y1, y2, axis=-1)
    if interleaved:
        y = b.op("Reshape", y, b.const(np.array([0, 0, 0, 2 * half], I64)))
    if 2 * half < head:
        y = b.op("Concat", y, _slice(b, x, 2 * half, head), axis=-1)
    return y

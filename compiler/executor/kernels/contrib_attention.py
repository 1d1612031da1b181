"""onnxruntime's attention contrib operators: Attention, MultiHeadAttention,
GroupQueryAttention and RotaryEmbedding (domain ``com.microsoft``).

All share one core, :func:`sdpa`: per head, ``softmax(Q K^T * scale + bias) V`` in
float32, where the bias holds masked positions at ``mask_filter_value`` (a large negative
number, as onnxruntime does rather than -inf) and causal masks over the positions after
the past. Tensors are ``[batch, heads, sequence, head_size]`` inside (BNSH).
"""

from __future__ import annotations

import numpy as np

from . import accumulate, kernel
from .checks import unsupported

MS = "com.microsoft"


def heads(x, n):
    """``[B, S, N*H]`` to ``[B, N, S, H]``."""
    b, s, d = x.shape
    return x.reshape(b, s, n, d // n).transpose(0, 2, 1, 3)


def merge(x):
    """``[B, N, S, H]`` to ``[B, S, N*H]``."""
    b, n, s, h = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(b, s, n * h)


def causal_bias(q_len, kv_len, past, fill, window=-1):
    """0 where query ``i`` (at position ``past + i``) may see key ``j``, else ``fill``."""
    i = np.arange(q_len)[:, None] + past
    j = np.arange(kv_len)[None, :]
    allowed = j <= i
    if window is not None and window >= 0:
        allowed &= j > i - window - 1
    return np.where(allowed, 0.0, fill).astype(np.float32)


def sdpa(q, k, v, scale, bias=None, softcap=0.0):
    """``softmax(q k^T * scale + bias) v`` per head; k and v may have fewer heads (GQA)."""
    if k.shape[1] != q.shape[1]:
        rep = q.shape[1] // k.shape[1]
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    s = accumulate.matmul(q.astype(np.float32), np.swapaxes(k, -1, -2).astype(np.float32))
    s = s * np.float32(scale)
    if softcap:
        s = np.float32(softcap) * np.tanh(s / np.float32(softcap))
    if bias is not None:
        s = s + bias
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= accumulate.wide_sum(p, -1).astype(p.dtype)
    return accumulate.matmul(p, v.astype(np.float32)).astype(q.dtype)


def _scale(attrs, head_size):
    s = attrs.get("scale")
    return s if s else 1.0 / np.sqrt(head_size)


def _mask_bias(mask, batch, q_len, kv_len, fill, ctx):
    """onnxruntime's mask_index / key_padding_mask forms as an additive bias."""
    if mask is None:
        return None
    if mask.ndim == 1 and mask.shape[0] == batch:  # valid lengths (right padding)
        keep = np.arange(kv_len)[None, :] < mask[:, None]
        return np.where(keep, 0.0, fill).astype(np.float32)[:, None, None, :]
    if mask.ndim == 2:
        return np.where(mask != 0, 0.0, fill).astype(np.float32)[:, None, None, :]
    if mask.ndim == 3:
        return np.where(mask != 0, 0.0, fill).astype(np.float32)[:, None, :, :]
    raise unsupported(ctx, f"a mask of shape {list(mask.shape)}")


@kernel("Attention", domain=MS)
def attention(inputs, attrs, ctx):
    x, w = inputs[0], inputs[1]
    get = lambda i: inputs[i] if len(inputs) > i else None  # noqa: E731
    bias, mask, past, attn_bias = get(2), get(3), get(4), get(5)
    if attrs.get("do_rotary", 0):
        raise unsupported(ctx, "Attention with do_rotary")
    n = attrs["num_heads"]
    sizes = attrs.get("qkv_hidden_sizes") or [w.shape[1] // 3] * 3
    qkv = accumulate.matmul(x.astype(np.float32), w.astype(np.float32))
    if bias is not None:
        qkv = qkv + bias
    q, k, v = np.split(qkv, np.cumsum(sizes)[:2], axis=-1)
    q, k, v = heads(q, n), heads(k, n), heads(v, n)
    past_len = 0
    if past is not None:
        past_len = past.shape[3]
        k, v = np.concatenate([past[0], k], axis=2), np.concatenate([past[1], v], axis=2)
    fill = attrs.get("mask_filter_value", -10000.0)
    b = _mask_bias(mask, x.shape[0], q.shape[2], k.shape[2], fill, ctx)
    if attrs.get("unidirectional", 0):
        causal = causal_bias(q.shape[2], k.shape[2], past_len, fill)
        b = causal if b is None else b + causal
    if attn_bias is not None:
        b = attn_bias if b is None else b + attn_bias
    y = merge(sdpa(q, k, v, _scale(attrs, sizes[0] // n), b)).astype(x.dtype)
    return [y, np.stack([k, v]).astype(x.dtype)][:ctx.num_outputs]


@kernel("MultiHeadAttention", domain=MS)
def multi_head_attention(inputs, attrs, ctx):
    get = lambda i: inputs[i] if len(inputs) > i else None  # noqa: E731
    q, k, v, bias = get(0), get(1), get(2), get(3)
    pad, attn_bias, past_k, past_v = get(4), get(5), get(6), get(7)
    n = attrs["num_heads"]
    if k is None or q.ndim != 3:
        raise unsupported(ctx, "MultiHeadAttention with packed QKV")
    if bias is not None:
        d, dk = q.shape[2], k.shape[-1] * (1 if k.ndim == 3 else k.shape[1])
        q = q + bias[:d]
        k = k + bias[d:d + dk] if k.ndim == 3 else k
        v = v + bias[d + dk:] if v.ndim == 3 else v
    qh = heads(q, n)
    kh = heads(k, n) if k.ndim == 3 else k  # a 4-D key is BNSH already
    vh = heads(v, n) if v.ndim == 3 else v
    if past_k is not None:
        kh = np.concatenate([past_k, kh], axis=2)
        vh = np.concatenate([past_v, vh], axis=2)
    fill = attrs.get("mask_filter_value", -10000.0)
    b = _mask_bias(pad, q.shape[0], q.shape[1], kh.shape[2], fill, ctx)
    if attrs.get("unidirectional", 0):
        causal = causal_bias(q.shape[1], kh.shape[2], kh.shape[2] - q.shape[1], fill)
        b = causal if b is None else b + causal
    if attn_bias is not None:
        b = attn_bias if b is None else b + attn_bias
    y = merge(sdpa(qh, kh, vh, _scale(attrs, qh.shape[-1]), b))
    return [y, kh.astype(q.dtype), vh.astype(q.dtype), None][:ctx.num_outputs]


def rotate(x, cos, sin, interleaved):
    """Rotary embedding of ``x [..., S, D]`` with ``cos, sin [..., S, R/2]`` (R <= D)."""
    half = cos.shape[-1]
    rot, rest = x[..., :2 * half], x[..., 2 * half:]
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = rot[..., :half], rot[..., half:]
    y1 = x1 * cos - x2 * sin
    y2 = x2 * cos + x1 * sin
    if interleaved:
        out = np.stack([y1, y2], axis=-1).reshape(rot.shape)
    else:
        out = np.concatenate([y1, y2], axis=-1)
    return np.concatenate([out, rest], axis=-1).astype(x.dtype)


@kernel("RotaryEmbedding", domain=MS)
def rotary_embedding(inputs, attrs, ctx):
    x, pos, cos_cache, sin_cache = inputs[:4]
    bnsh = x.ndim == 4
    if bnsh:
        b, n, s, d = x.shape
        xh = x
    else:
        b, s, hidden = x.shape
        n = attrs.get("num_heads") or hidden // (2 * cos_cache.shape[1])
        xh = heads(x, n)
    pos = np.asarray(pos).astype(np.int64)
    if pos.size == 1 and pos.ndim <= 1:  # one offset for every sequence
        pos = np.broadcast_to(pos.reshape(-1)[0] + np.arange(s), (b, s))
    cos, sin = cos_cache[pos][:, None], sin_cache[pos][:, None]  # [B, 1, S, R/2]
    y = rotate(xh, cos, sin, attrs.get("interleaved", 0))
    return [y if bnsh else merge(y)]


@kernel("GroupQueryAttention", domain=MS)
def group_query_attention(inputs, attrs, ctx):
    get = lambda i: inputs[i] if len(inputs) > i else None  # noqa: E731
    q, k, v, past_k, past_v = get(0), get(1), get(2), get(3), get(4)
    seqlens, total = get(5), get(6)
    n, kvn = attrs["num_heads"], attrs["kv_num_heads"]
    if k is None:  # packed [B, S, (N + 2 kvN) H]
        hs = q.shape[2] // (n + 2 * kvn)
        q, k, v = np.split(q, [n * hs, (n + kvn) * hs], axis=-1)
    batch, q_len = q.shape[:2]
    qh, kh, vh = heads(q, n), heads(k, kvn), heads(v, kvn)
    lens = np.asarray(seqlens).reshape(-1).astype(np.int64) + 1  # total length per batch
    if attrs.get("do_rotary", 0):
        cos_cache, sin_cache = get(7), get(8)
        pos = (lens - q_len)[:, None] + np.arange(q_len)[None, :]
        cos, sin = cos_cache[pos][:, None], sin_cache[pos][:, None]
        inter = attrs.get("rotary_interleaved", 0)
        qh, kh = rotate(qh, cos, sin, inter), rotate(kh, cos, sin, inter)
    total_len = int(np.asarray(total).reshape(-1)[0])
    fill = np.float32(np.finfo(np.float32).min)
    outs, pk, pv = [], [], []
    for bi in range(batch):
        past_len = int(lens[bi]) - q_len
        if past_k is not None and past_len > 0:
            kb = np.concatenate([past_k[bi:bi + 1, :, :past_len], kh[bi:bi + 1]], axis=2)
            vb = np.concatenate([past_v[bi:bi + 1, :, :past_len], vh[bi:bi + 1]], axis=2)
        else:
            kb, vb = kh[bi:bi + 1], vh[bi:bi + 1]
        bias = causal_bias(q_len, kb.shape[2], past_len, fill,
                           attrs.get("local_window_size", -1))
        ab = get(10)
        if ab is not None:
            bias = bias + ab[bi if ab.shape[0] > 1 else 0]
        outs.append(sdpa(qh[bi:bi + 1], kb, vb, _scale(attrs, qh.shape[-1]), bias,
                         attrs.get("softcap", 0.0)))
        width = max(total_len, kb.shape[2],
                    past_k.shape[2] if past_k is not None else 0)
        pad = [(0, 0), (0, 0), (0, width - kb.shape[2]), (0, 0)]
        pk.append(np.pad(kb, pad))
        pv.append(np.pad(vb, pad))
    y = merge(np.concatenate(outs))
    return [y, np.concatenate(pk).astype(q.dtype), np.concatenate(pv).astype(q.dtype)][
        :ctx.num_outputs]

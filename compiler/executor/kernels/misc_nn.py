"""Attention, RotaryEmbedding, TopK, CumSum, CumProd, Dropout and the random operators.

Attention follows the opset-23 definition: 3-D inputs are split into heads, grouped
query heads share key/value heads, the mask (boolean or additive), causal masking
aligned to the bottom right when a past cache is present, softcap, and the four
``qk_matmul_output_mode`` taps. Rows whose keys are all masked give zeros, not NaN.
Random operators draw from ``ctx.rng`` (the ``seed`` attribute is ignored, so that a
whole run is reproducible from one generator).
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from . import accumulate, kernel
from .checks import accepts, unsupported


def _masked_softmax(x):
    # zero and one of x's dtype: a Python 0 would promote bfloat16 to float64 in np.where
    # and round differently from a softmax computed in the input's type
    zero, one = np.zeros((), x.dtype), np.ones((), x.dtype)
    m = x.max(axis=-1, keepdims=True)
    m = np.where(np.isneginf(m), zero, m)
    e = np.exp(x - m)
    s = accumulate.wide_sum(e, -1).astype(x.dtype) if x.dtype.kind == "f" else \
        e.sum(axis=-1, keepdims=True)
    return e / np.where(s == zero, one, s)


def _position_bias(q_len, kv_len, offset, causal, left, right, dtype):
    """Additive bias allowing key j for query i per causal/window limits (offset: past)."""
    offset = np.asarray(offset).reshape(-1, 1, 1)
    diff = np.arange(q_len)[None, :, None] + offset - np.arange(kv_len)[None, None, :]
    allowed = np.ones(diff.shape, dtype=bool)
    if causal:
        allowed &= diff >= 0
    if left >= 0:
        allowed &= diff <= left
    if right >= 0:
        allowed &= -diff <= right
    bias = np.where(allowed, dtype.type(0), dtype.type(-np.inf))
    return bias[:, None] if bias.shape[0] > 1 else bias[0]


@kernel("Attention")
@accepts("float")
def attention(inputs, attrs, ctx):
    q, k, v = inputs[:3]
    mask, past_k, past_v, nonpad = (list(inputs[3:7]) + [None] * 4)[:4]
    rank3 = q.ndim == 3
    if rank3:
        if "q_num_heads" not in attrs or "kv_num_heads" not in attrs:
            raise unsupported(ctx, "3-D Attention without q_num_heads and kv_num_heads")
        qh, kvh = attrs["q_num_heads"], attrs["kv_num_heads"]
        b = q.shape[0]
        q = q.reshape(b, q.shape[1], qh, -1).transpose(0, 2, 1, 3)
        k = k.reshape(b, k.shape[1], kvh, -1).transpose(0, 2, 1, 3)
        v = v.reshape(b, v.shape[1], kvh, -1).transpose(0, 2, 1, 3)
    scale = attrs.get("scale")
    scale = 1 / np.sqrt(q.shape[3]) if scale is None else scale
    root = q.dtype.type(np.sqrt(scale))
    k = np.concatenate((past_k, k), axis=2) if past_k is not None else k
    v = np.concatenate((past_v, v), axis=2) if past_v is not None else v
    present_k, present_v = k, v
    q_len, kv_len = q.shape[2], k.shape[2]
    bias = np.zeros((q_len, kv_len), dtype=q.dtype)
    if mask is not None:
        pad = kv_len - mask.shape[-1]
        if pad > 0:
            mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, pad)],
                          constant_values=False if mask.dtype == bool else -np.inf)
        if mask.dtype == bool:
            mask = np.where(mask, q.dtype.type(0), q.dtype.type(-np.inf))
        bias = bias + mask.astype(q.dtype)
    causal = bool(attrs.get("is_causal", 0))
    left, right = attrs.get("left_window_size", -1), attrs.get("right_window_size", -1)
    if causal or left >= 0 or right >= 0:
        if past_k is None and nonpad is not None:
            offset = nonpad.reshape(-1) - q_len
        else:
            offset = past_k.shape[2] if past_k is not None else 0
        bias = bias + _position_bias(q_len, kv_len, offset, causal, left, right, q.dtype)
    if nonpad is not None:
        keep = np.arange(kv_len) < nonpad.reshape(-1, 1)
        bias = bias + np.where(keep, 0, -np.inf).astype(q.dtype).reshape(-1, 1, 1, kv_len)
    if q.shape[1] != k.shape[1]:
        reps = q.shape[1] // k.shape[1]
        k, v = np.repeat(k, reps, axis=1), np.repeat(v, reps, axis=1)
    qk = accumulate.matmul(q * root, k.transpose(0, 1, 3, 2) * root, dtype=q.dtype)
    softcap = attrs.get("softcap", 0.0)
    if softcap and softcap > 0:
        qk = np.tanh(qk / softcap) * softcap
    scores = qk + bias
    mode = attrs.get("qk_matmul_output_mode", 0)
    tap = scores if mode == 2 else qk
    precision = attrs.get("softmax_precision")
    if precision:
        scores = scores.astype(helper.tensor_dtype_to_np_dtype(precision))
    probs = _masked_softmax(scores)
    probs = np.where(np.isneginf(bias.max(axis=-1, keepdims=True)), 0, probs).astype(q.dtype)
    if mode == 3:
        tap = probs
    y = accumulate.matmul(probs, v, dtype=q.dtype)
    if rank3:
        y = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
    return [y, present_k, present_v, tap.astype(q.dtype)][:ctx.num_outputs]


@kernel("RotaryEmbedding")
@accepts("float")
def rotary_embedding(inputs, attrs, ctx):
    x, cos, sin = inputs[:3]
    pos = inputs[3] if len(inputs) > 3 else None
    shape = x.shape
    t = x.transpose(0, 2, 1, 3) if x.ndim == 4 else x.reshape(shape[0], shape[1], attrs["num_heads"], -1)
    dim = attrs.get("rotary_embedding_dim", 0) or t.shape[3]
    rot, keep = t[..., :dim], t[..., dim:]
    if pos is not None:
        cos, sin = cos[pos], sin[pos]
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    if attrs.get("interleaved", 0):
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = rot[..., :dim // 2], rot[..., dim // 2:]
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    if attrs.get("interleaved", 0):
        rot = np.stack((real, imag), axis=-1).reshape(rot.shape)
    else:
        rot = np.concatenate((real, imag), axis=-1)
    out = np.concatenate((rot, keep), axis=-1).astype(x.dtype)
    return [out.transpose(0, 2, 1, 3) if x.ndim == 4 else out.reshape(shape)]


@kernel("TopK")
@accepts("float", "int")
def topk(inputs, attrs, ctx):
    x = inputs[0]
    k = int(attrs["k"]) if ctx.opset < 10 else int(np.asarray(inputs[1]).reshape(-1)[0])
    axis = attrs.get("axis", -1) % x.ndim
    largest = attrs.get("largest", 1)
    key = x.astype(np.int64) if x.dtype.kind == "u" else x
    # A stable sort keeps equal values in index order, as ONNX asks.
    order = np.argsort(-key if largest else key, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]


@kernel("CumSum")
@accepts("float", "int")
def cumsum(inputs, attrs, ctx):
    x, axis = inputs[0], int(np.asarray(inputs[1]).reshape(-1)[0])
    if attrs.get("reverse", 0):
        x = np.flip(x, axis)
    y = np.cumsum(x, axis=axis, dtype=x.dtype)
    if attrs.get("exclusive", 0):
        y = np.roll(y, 1, axis=axis)
        sel = [slice(None)] * x.ndim
        sel[axis] = 0
        y[tuple(sel)] = 0
    return [np.flip(y, axis) if attrs.get("reverse", 0) else y]


@kernel("CumProd")
@accepts("float", "int")
def cumprod(inputs, attrs, ctx):
    x, axis = inputs[0], int(np.asarray(inputs[1]).reshape(-1)[0])
    axis %= max(x.ndim, 1)
    reverse, exclusive = attrs.get("reverse", 0), attrs.get("exclusive", 0)
    if reverse:
        x = np.flip(x, axis)
    if exclusive:  # shift right by one along the axis, the first product being 1
        ones = np.ones_like(np.take(x, [0], axis=axis))
        x = np.concatenate([ones, np.take(x, np.arange(x.shape[axis] - 1), axis=axis)], axis)
    y = np.cumprod(x, axis=axis, dtype=x.dtype)
    return [np.flip(y, axis) if reverse else y]


@kernel("Dropout")
def dropout(inputs, attrs, ctx):
    x = inputs[0]
    if ctx.opset >= 12:
        ratio = float(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else 0.5
        training = bool(inputs[2]) if len(inputs) > 2 and inputs[2] is not None else False
    else:
        ratio, training = attrs.get("ratio", 0.5), False
    if not training or ratio == 0:
        return [x.copy(), np.ones(x.shape, dtype=bool)][:ctx.num_outputs]
    mask = ctx.rng.uniform(size=x.shape) >= ratio
    return [(x * mask / (1 - ratio)).astype(x.dtype), mask][:ctx.num_outputs]


def _dtype(attrs, default):
    code = attrs.get("dtype")
    return np.dtype(helper.tensor_dtype_to_np_dtype(code)) if code else np.dtype(default)


@kernel("RandomNormal", "RandomNormalLike")
def random_normal(inputs, attrs, ctx):
    shape = inputs[0].shape if inputs else tuple(attrs["shape"])
    dt = _dtype(attrs, inputs[0].dtype if inputs else np.float32)
    out = ctx.rng.normal(attrs.get("mean", 0.0), attrs.get("scale", 1.0), size=shape)
    return [out.astype(dt)]


@kernel("RandomUniform", "RandomUniformLike")
def random_uniform(inputs, attrs, ctx):
    shape = inputs[0].shape if inputs else tuple(attrs["shape"])
    dt = _dtype(attrs, inputs[0].dtype if inputs else np.float32)
    out = ctx.rng.uniform(attrs.get("low", 0.0), attrs.get("high", 1.0), size=shape)
    return [out.astype(dt)]


@kernel("Bernoulli")
@accepts("float")
def bernoulli(inputs, attrs, ctx):
    p = inputs[0]
    return [(ctx.rng.uniform(size=p.shape) < p).astype(_dtype(attrs, p.dtype))]


@kernel("Multinomial")
def multinomial(inputs, attrs, ctx):
    logits = inputs[0].astype(np.float64)
    n = attrs.get("sample_size", 1)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    u = ctx.rng.uniform(size=(logits.shape[0], n))
    out = np.stack([np.searchsorted(cdf[b], u[b], side="right") for b in range(logits.shape[0])])
    out = np.minimum(out, logits.shape[1] - 1)
    dt = _dtype(attrs, np.int32)
    if dt not in (np.int32, np.int64):
        raise unsupported(ctx, f"Multinomial output {dt}")
    return [out.astype(dt)]

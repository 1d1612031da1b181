"""Attention and RotaryEmbedding (opset 23).

Attention follows the opset-23 definition: 3-D inputs are split into heads, grouped
query heads share key/value heads, the mask (boolean or additive), causal masking
aligned to the bottom right when a past cache is present, softcap, and the four
``qk_matmul_output_mode`` taps. Rows whose keys are all masked give zeros, not NaN.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from onnx import helper

from .. import threads
from . import accumulate, kernel, products32
from .checks import accepts, unsupported
from .norm import softmax_row


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


# -- npuc::Attention with float32 products -------------------------------------------------

_SCORES_BYTES = 1 << 18  # the scores of one task at most (a quarter of a core's L2)


def attention32(q, kt, v, mask=None, scale=1.0, select=False, fill=0.0,
                nan_to_zero=False) -> np.ndarray:
    """``softmax(q @ kt * scale [+ mask]) @ v`` in float32 (``select``: the scores where
    ``mask`` is false replaced by ``fill``; ``nan_to_zero``: a row masked out entirely
    gives zeros), float32 operands broadcasting on their leading axes.

    One task per block of query rows of a group of heads (neighbours on the last batch
    axis), on npuc's threads: the scores of the block (one BLAS call per head, numpy's
    batched product), one Numba call for every row (scale, mask, :func:`softmax_row`),
    then the block's product with ``v``, so the scores never leave the cache and a head
    costs no Python of its own. The result is laid out heads-last. The blocks are those
    the separate MatMuls cut their products in (``products32.row_cut``, fixed by the
    shapes), so the result has their bits on any thread count; when those two cuts
    differ, the parts run one after the other."""
    full = np.broadcast_shapes(q.shape[:-2], kt.shape[:-2], v.shape[:-2])
    batch = full or (1,)
    m, n, dv = q.shape[-2], kt.shape[-1], v.shape[-1]
    qb = np.broadcast_to(q, batch + q.shape[-2:])
    kb = np.broadcast_to(kt, batch + kt.shape[-2:])
    vb = np.broadcast_to(v, batch + v.shape[-2:])
    has_mask = mask is not None
    mb = np.broadcast_to(mask if has_mask else np.zeros((), np.float32), batch + (m, n))
    scale32, fill32 = np.float32(scale), np.float32(fill)
    count = int(np.prod(batch, dtype=np.int64))
    cut = products32.row_cut(m, n, q.shape[-1], count)
    if cut is None or cut != products32.row_cut(m, dv, n, count):
        s = accumulate.matmul(qb, kb)
        s3 = s.reshape(-1, m, n)
        threads.by_rows(lambda h0, h1: _probabilities(
            s3[h0:h1], mb.reshape(-1, m, n)[h0:h1], has_mask, select, fill32, scale32,
            nan_to_zero), len(s3))
        return accumulate.matmul(s, vb).reshape(full + (m, dv))
    # stored heads-last (rows, heads, values): the Transpose and Reshape that merge the
    # heads after attention are then views, not a copy of the whole result
    y = np.moveaxis(np.empty(batch[:-1] + (m, batch[-1], dv), np.float32), -2, -3)
    bounds = cut + [m]
    per = max(b - a for a, b in zip(bounds, bounds[1:])) if m else 1
    blocks = len(cut)
    heads = batch[-1]
    group = max(1, min(heads, _SCORES_BYTES // max(1, 4 * per * n)))
    groups = -(-heads // group)
    outer = batch[:-1]

    def task(t0, t1):
        s = np.empty((group, per, n), np.float32)
        for t in range(t0, t1):
            o = np.unravel_index(t // (groups * blocks), outer) if outer else ()
            h0 = (t // blocks) % groups * group
            h1 = min(heads, h0 + group)
            r0, r1 = bounds[t % blocks], bounds[t % blocks + 1]
            sb = s[:h1 - h0, :r1 - r0]
            np.matmul(qb[o][h0:h1, r0:r1], kb[o][h0:h1], out=sb)
            _probabilities(sb, mb[o][h0:h1, r0:r1], has_mask, select, fill32, scale32,
                           nan_to_zero)
            np.matmul(sb, vb[o][h0:h1], out=y[o][h0:h1, r0:r1])

    threads.by_rows(task, count // heads * groups * blocks)
    return y.reshape(full + (m, dv))


@nb.njit(cache=True, error_model="numpy", nogil=True)
def _probabilities(s, mask, has_mask, select, fill, scale, nan_to_zero):
    """Each row of the scores ``s`` (heads, rows, keys) scaled, masked and turned into
    probabilities, in place (:func:`softmax_row`); each step rounds as the separate
    Mul, Add or Where, Softmax and Where(IsNaN) kernels do (a product by a scale of 1
    is exact, so it is not a special case: a branch in the loop kept it scalar, 5x
    slower)."""
    for h in range(s.shape[0]):
        for r in range(s.shape[1]):
            row, mrow = s[h, r], mask[h, r]
            if has_mask and select:
                for i in range(row.shape[0]):
                    v = row[i] * scale
                    row[i] = v if mrow[i] else fill
            elif has_mask:
                for i in range(row.shape[0]):
                    row[i] = row[i] * scale + mrow[i]
            else:
                for i in range(row.shape[0]):
                    row[i] = row[i] * scale
            softmax_row(row, row)
            if nan_to_zero and _has_nan(row):
                for i in range(row.shape[0]):
                    v = row[i]
                    row[i] = v if v == v else np.float32(0)


@nb.njit(cache=True, error_model="numpy", nogil=True, fastmath={"reassoc"})
def _has_nan(row):
    """Whether the probabilities ``row`` hold a NaN: their sum is NaN then, and only then
    (they are finite and not negative otherwise); a vectorised sum is cheaper than a
    test of every element."""
    acc = np.float32(0)
    for i in range(row.shape[0]):
        acc += row[i]
    return acc != acc

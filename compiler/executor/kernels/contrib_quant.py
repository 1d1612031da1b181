"""onnxruntime's quantized contrib operators (domain ``com.microsoft``).

- QLinearConv, QuantizeLinear, DequantizeLinear: the ONNX operators of the same name
  (QLinearConv also channels-last).
- QLinearAdd, QLinearMul, QLinearSigmoid, QLinearLeakyRelu, QLinearConcat,
  QLinearGlobalAveragePool: dequantize, compute in float32, quantize (round half to
  even, saturate) as onnxruntime's kernels and tables do.
- QGemm, MatMulIntegerToFloat, DynamicQuantizeMatMul: int32 accumulation of
  ``(A - a_zp) (B - b_zp)`` (exact, in int64), then scaled to float (and for QGemm
  with ``y_scale``, quantized again). DynamicQuantizeMatMul quantizes A to uint8 with
  DynamicQuantizeLinear first.
- MatMulNBits: ``A @ dequantize(B)^T`` with B packed in ``bits``-bit blocks along K.
- DynamicQuantizeLSTM: LSTM with weights ``W [dirs, input, 4H]`` and ``R [dirs, H, 4H]``
  in int8, dequantized with their per-direction or per-column scales.
"""

from __future__ import annotations

import numpy as np

from . import accumulate, get_kernel, kernel
from .checks import unsupported
from .contrib import run
from .quant import quantize

MS = "com.microsoft"


def dq(x, scale, zp, axis=None):
    """``(x - zp) * scale`` in float32; per-tensor, or 1-D along ``axis``."""
    scale = np.asarray(scale, np.float32)
    zp = np.zeros((), np.int32) if zp is None else np.asarray(zp).astype(np.int32)
    if scale.ndim == 1 and scale.size > 1 and axis is not None:
        shape = [1] * x.ndim
        shape[axis % x.ndim] = scale.size
        scale, zp = scale.reshape(shape), (zp.reshape(shape) if zp.size > 1 else zp)
    return ((x.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


def q(x, scale, zp, dtype=None):
    """Quantize float ``x`` to ``zp``'s type (uint8 without a zero point)."""
    dtype = np.dtype(dtype or (np.asarray(zp).dtype if zp is not None else np.uint8))
    return quantize(np.asarray(x, np.float32), np.asarray(scale, np.float32),
                    None if zp is None else np.asarray(zp), dtype)


def _opt(inputs, i):
    return inputs[i] if len(inputs) > i else None


@kernel("QuantizeLinear", domain=MS)
def ms_quantize(inputs, attrs, ctx):
    return [run("QuantizeLinear", inputs, {"axis": attrs.get("axis", 1)}, ctx)]


@kernel("DequantizeLinear", domain=MS)
def ms_dequantize(inputs, attrs, ctx):
    return [run("DequantizeLinear", inputs, {"axis": attrs.get("axis", 1)}, ctx)]


@kernel("QLinearConv", domain=MS)
def ms_qlinear_conv(inputs, attrs, ctx):
    attrs = dict(attrs)
    last = attrs.pop("channels_last", 0)
    if not last:
        return [run("QLinearConv", inputs, attrs, ctx)]
    x = inputs[0]
    x = np.transpose(x, (0, x.ndim - 1, *range(1, x.ndim - 1)))
    y = run("QLinearConv", [x, *inputs[1:]], attrs, ctx)
    return [np.ascontiguousarray(np.transpose(y, (0, *range(2, y.ndim), 1)))]


def _binary(inputs, fn):
    a = dq(inputs[0], inputs[1], _opt(inputs, 2))
    b = dq(inputs[3], inputs[4], _opt(inputs, 5))
    zc = _opt(inputs, 7)
    return [q(fn(a, b), inputs[6], zc, inputs[0].dtype if zc is None else None)]


@kernel("QLinearAdd", domain=MS)
def qlinear_add(inputs, attrs, ctx):
    return _binary(inputs, np.add)


@kernel("QLinearMul", domain=MS)
def qlinear_mul(inputs, attrs, ctx):
    return _binary(inputs, np.multiply)


def _unary(inputs, fn):
    """Through a table of the 256 codes, as onnxruntime computes these."""
    x = inputs[0]
    zy = _opt(inputs, 4)
    codes = np.arange(np.iinfo(x.dtype).min, np.iinfo(x.dtype).max + 1).astype(x.dtype)
    table = q(fn(dq(codes, inputs[1], _opt(inputs, 2))), inputs[3], zy,
              x.dtype if zy is None else None)
    return [table[x.astype(np.int32) - int(codes[0])]]


@kernel("QLinearSigmoid", domain=MS)
def qlinear_sigmoid(inputs, attrs, ctx):
    return _unary(inputs, lambda v: (1.0 / (1.0 + np.exp(-v.astype(np.float64))))
                  .astype(np.float32))


@kernel("QLinearLeakyRelu", domain=MS)
def qlinear_leaky_relu(inputs, attrs, ctx):
    alpha = np.float32(attrs.get("alpha", 0.01))
    return _unary(inputs, lambda v: np.where(v >= 0, v, v * alpha))


@kernel("QLinearGlobalAveragePool", domain=MS)
def qlinear_global_average_pool(inputs, attrs, ctx):
    x, sx, zx, sy, zy = inputs[:5]
    last = attrs.get("channels_last", 0)
    axes = tuple(range(1, x.ndim - 1)) if last else tuple(range(2, x.ndim))
    count = int(np.prod([x.shape[a] for a in axes]))
    acc = (x.astype(np.int64) - int(zx)).sum(axis=axes, keepdims=True)
    mult = np.float32(sx) / (np.float32(sy) * np.float32(count))
    y = np.rint(acc.astype(np.float32) * mult) + int(zy)
    info = np.iinfo(x.dtype)
    return [np.clip(y, info.min, info.max).astype(x.dtype)]


@kernel("QLinearConcat", domain=MS)
def qlinear_concat(inputs, attrs, ctx):
    sy, zy = inputs[0], inputs[1]
    parts = []
    for i in range(2, len(inputs), 3):
        x, sx, zx = inputs[i:i + 3]
        same = np.float32(sx) == np.float32(sy) and int(zx) == int(zy)
        parts.append(x if same else _unary([x, sx, zx, sy, zy], lambda v: v)[0])
    return [np.concatenate(parts, axis=attrs["axis"])]


def int_matmul(a, b, za=None, zb=None):
    """``(a - za) @ (b - zb)`` exactly (int64), zero points per tensor or per column."""
    a = a.astype(np.int64) - (0 if za is None else np.asarray(za).astype(np.int64))
    b = b.astype(np.int64) - (0 if zb is None else np.asarray(zb).astype(np.int64))
    return np.matmul(a, b)


@kernel("QGemm", domain=MS)
def qgemm(inputs, attrs, ctx):
    a, sa, za, b, sb, zb = inputs[:6]
    c, sy, zy = _opt(inputs, 6), _opt(inputs, 7), _opt(inputs, 8)
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b, zb = b.T, zb
    acc = int_matmul(a, b, za, zb)
    if c is not None:
        acc = acc + c.astype(np.int64)
    scale = np.float32(attrs.get("alpha", 1.0)) * np.asarray(sa, np.float32) * \
        np.asarray(sb, np.float32)
    y = acc.astype(np.float32) * scale
    if sy is None:
        return [y.astype(np.float32)]
    return [q(y, sy, zy, None)]


@kernel("MatMulIntegerToFloat", domain=MS)
def matmul_integer_to_float(inputs, attrs, ctx):
    a, b, sa, sb = inputs[:4]
    za, zb, bias = _opt(inputs, 4), _opt(inputs, 5), _opt(inputs, 6)
    y = int_matmul(a, b, za, zb).astype(np.float32) * (np.asarray(sa) * np.asarray(sb))
    if bias is not None:
        y = y + bias
    return [y.astype(np.asarray(sa).dtype)]


@kernel("DynamicQuantizeMatMul", domain=MS)
def dynamic_quantize_matmul(inputs, attrs, ctx):
    a, b, sb = inputs[:3]
    zb, bias = _opt(inputs, 3), _opt(inputs, 4)
    aq, sa, za = get_kernel("DynamicQuantizeLinear")([a], {}, ctx)
    return matmul_integer_to_float([aq, b, sa, sb, za, zb, bias], {}, ctx)


def unpack_bits(packed, bits, count):
    """The first ``count`` unsigned ``bits``-bit values of each row (low bits first)."""
    flat = packed.reshape(packed.shape[0], -1).astype(np.uint8)
    per = 8 // bits
    shifts = (np.arange(per) * bits).astype(np.uint8)
    vals = (flat[:, :, None] >> shifts) & np.uint8((1 << bits) - 1)
    return vals.reshape(flat.shape[0], -1)[:, :count]


@kernel("MatMulNBits", domain=MS)
def matmul_nbits(inputs, attrs, ctx):
    a, b, scales = inputs[:3]
    zps, g_idx, bias = _opt(inputs, 3), _opt(inputs, 4), _opt(inputs, 5)
    n, k, bits, block = attrs["N"], attrs["K"], attrs.get("bits", 4), attrs["block_size"]
    if bits not in (2, 4, 8) or g_idx is not None:
        raise unsupported(ctx, f"MatMulNBits with bits={bits}" if g_idx is None else
                          "MatMulNBits with g_idx")
    blocks = -(-k // block)
    qv = unpack_bits(b.reshape(n, -1), bits, blocks * block).astype(np.float32)
    qv = qv.reshape(n, blocks, block)
    scale = scales.reshape(n, blocks, 1).astype(np.float32)
    if zps is None:
        zp = np.float32(1 << (bits - 1))
    elif zps.dtype == np.uint8:
        zp = unpack_bits(zps.reshape(n, -1), bits, blocks).astype(np.float32)[..., None]
    else:
        raise unsupported(ctx, "MatMulNBits with float zero points")
    w = (qv - zp) * scale
    w = w.reshape(n, -1)[:, :k]
    y = accumulate.matmul(a.astype(np.float32), w.T, dtype=np.float32)
    if bias is not None:
        y = y + bias
    return [y.astype(a.dtype)]


@kernel("DynamicQuantizeLSTM", domain=MS)
def dynamic_quantize_lstm(inputs, attrs, ctx):
    w, r = inputs[1], inputs[2]
    ws, wz, rs, rz = inputs[8:12]
    wf = dq(w, ws.reshape(w.shape[0], -1)[:, None, :],
            np.asarray(wz).reshape(w.shape[0], -1)[:, None, :])
    rf = dq(r, rs.reshape(r.shape[0], -1)[:, None, :],
            np.asarray(rz).reshape(r.shape[0], -1)[:, None, :])
    lstm_in = [inputs[0], np.ascontiguousarray(wf.transpose(0, 2, 1)),
               np.ascontiguousarray(rf.transpose(0, 2, 1)), *inputs[3:8]]
    while lstm_in and lstm_in[-1] is None:
        lstm_in.pop()
    return run("LSTM", lstm_in, dict(attrs), ctx, max(ctx.num_outputs, 1)) \
        if ctx.num_outputs > 1 else [run("LSTM", lstm_in, dict(attrs), ctx)]

"""Kernels of the quantized npuc operators: exact integer arithmetic.

The int32 accumulation of QConv and QMatMul is computed with a BLAS product of the integer
operands: every product and partial sum is an integer below ``2**53`` (checked:
``K * 255 * 128`` for the reduction length ``K``), so float64 represents each one exactly
and the result is the int32 sum, whatever order BLAS adds in; QMatMul uses float32 on
blocks of K short enough that every partial sum stays below ``2**24``
(:func:`~npuc.compiler.executor.kernels.quant.integer_product`), twice as fast. Requantization, Add, Mul and
the lookups are Numba loops over int32/int64 values (:mod:`npuc.compiler.quantize.fixedpoint`),
imported when a kernel first runs, so that registering these operators does not load Numba.
"""

from __future__ import annotations

import numpy as np

from npuc.compiler.executor.kernels import kernel
from npuc.ir.errors import NpucError

_EXACT = 2.0**53


def _check_exact(k: int, ctx) -> None:
    if k * 255 * 128 >= _EXACT:
        raise NpucError(f"{ctx.describe()}: reduction of {k} terms is too long for exact "
                        "accumulation")


def _to_int32(acc: np.ndarray, bias, axis: int, ctx) -> np.ndarray:
    acc = np.rint(acc).astype(np.int64)
    if bias is not None:
        shape = [1] * acc.ndim
        shape[axis] = -1
        acc += bias.astype(np.int64).reshape(shape)
    # the accumulator saturates, as the hardware's does
    return np.clip(acc, -(2**31), 2**31 - 1).astype(np.int32)


@kernel("QConv", domain="npuc")
def qconv(inputs, attrs, ctx):
    from npuc.compiler.executor.kernels.conv import conv_nd
    from npuc.compiler.quantize.fixedpoint import requantize

    x, w, b, m0, shift = inputs[:5]
    nd = x.ndim - 2
    xi = x.astype(np.float64) - float(attrs.get("x_zero_point", 0))
    group = attrs.get("group", 1)
    _check_exact(int(np.prod(w.shape[1:])), ctx)
    acc = conv_nd(xi, w.astype(np.float64), None, attrs.get("strides") or [1] * nd,
                  attrs.get("pads") or [0] * (2 * nd), attrs.get("dilations") or [1] * nd,
                  group)
    acc = _to_int32(acc, b, 1, ctx)
    return [requantize(acc, m0, shift, attrs.get("y_zero_point", 0), attrs.get("qmin", -128),
                       attrs.get("qmax", 127), axis=1)]


@kernel("QMatMul", domain="npuc")
def qmatmul(inputs, attrs, ctx):
    from npuc.compiler.executor.kernels.quant import integer_product
    from npuc.compiler.quantize.fixedpoint import requantize

    a, b, bias, m0, shift = inputs[:5]
    _check_exact(a.shape[-1], ctx)
    af = a.astype(np.float32) - np.float32(attrs.get("a_zero_point", 0))
    bf = b.astype(np.float32) - np.float32(attrs.get("b_zero_point", 0))
    acc = _to_int32(integer_product(af, bf), bias, -1, ctx)
    return [requantize(acc, m0, shift, attrs.get("y_zero_point", 0), attrs.get("qmin", -128),
                       attrs.get("qmax", 127), axis=-1)]


@kernel("QAdd", domain="npuc")
def qadd(inputs, attrs, ctx):
    from npuc.compiler.quantize.fixedpoint import quantized_add

    a, b = inputs
    return [quantized_add(a, b, attrs.get("a_zero_point", 0), attrs.get("b_zero_point", 0),
                          (attrs["a_multiplier"], attrs["a_shift"]),
                          (attrs["b_multiplier"], attrs["b_shift"]),
                          (attrs["y_multiplier"], attrs["y_shift"]),
                          attrs.get("y_zero_point", 0), attrs.get("qmin", -128),
                          attrs.get("qmax", 127), attrs.get("left_shift", 20))]


@kernel("QMul", domain="npuc")
def qmul(inputs, attrs, ctx):
    from npuc.compiler.quantize.fixedpoint import quantized_mul

    a, b = inputs
    return [quantized_mul(a, b, attrs.get("a_zero_point", 0), attrs.get("b_zero_point", 0),
                          (attrs["multiplier"], attrs["shift"]), attrs.get("y_zero_point", 0),
                          attrs.get("qmin", -128), attrs.get("qmax", 127))]


@kernel("QReduceSum", domain="npuc")
def qreduce_sum(inputs, attrs, ctx):
    from npuc.compiler.quantize.fixedpoint import requantize

    x = inputs[0]
    axes = tuple(a % x.ndim for a in (attrs.get("axes") or range(x.ndim)))
    acc = np.sum(x.astype(np.int64) - int(attrs.get("x_zero_point", 0)), axis=axes,
                 keepdims=bool(attrs.get("keepdims", 1)))
    acc = np.clip(acc, -(2**31), 2**31 - 1).astype(np.int32)  # the accumulator saturates
    return [requantize(acc, [attrs["multiplier"]], [attrs["shift"]],
                       attrs.get("y_zero_point", 0), attrs.get("qmin", -128),
                       attrs.get("qmax", 127), axis=0)]


@kernel("Requantize", domain="npuc")
def requantize_kernel(inputs, attrs, ctx):
    from npuc.compiler.quantize.fixedpoint import requantize

    x = inputs[0].astype(np.int32) - np.int32(attrs.get("x_zero_point", 0))
    return [requantize(x, [attrs["multiplier"]], [attrs["shift"]], attrs.get("y_zero_point", 0),
                       attrs.get("qmin", -128), attrs.get("qmax", 127), axis=0)]


@kernel("Lut", domain="npuc")
def lut(inputs, attrs, ctx):
    x, table = inputs
    return [np.asarray(table)[x.astype(np.int16) + 128]]

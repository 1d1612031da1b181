"""Matrix products: MatMul, Gemm, Einsum (float64 accumulation, see ``accumulate``) and the
exact integer forms MatMulInteger and QLinearMatMul (int32 accumulation in a Numba loop,
never through float).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import accumulate, kernel
from .checks import accepts, unsupported
from .epilogue import Epilogue
from .quant import exact_int_matmul, requantize


@kernel("MatMul")
def matmul(inputs, attrs, ctx):
    a, b = inputs
    if a.dtype.kind == "V" and "float" in a.dtype.name or a.dtype.kind == "f":
        # an Add after the product (and its activation) that the run fused, applied to
        # each tile of the result in cache (executor/fusion.py)
        fused = ctx.epilogue if ctx is not None else None
        if fused is not None:
            fused.check(_product_size(a.shape, b.shape))
        return [accumulate.matmul(a, b, epilogue=fused)]
    if a.dtype.kind not in "iu":
        raise unsupported(ctx, f"MatMul on {a.dtype}")
    return [np.matmul(a, b)]


def _product_size(a: tuple, b: tuple) -> int:
    """The number of elements of ``a @ b`` for operands of shapes ``a`` and ``b`` (numpy's
    rules: a 1-D operand is a row or a column that the result drops)."""
    a2 = a if len(a) >= 2 else (1,) + tuple(a)
    b2 = b if len(b) >= 2 else tuple(b) + (1,)
    return int(np.prod(np.broadcast_shapes(a2[:-2], b2[:-2]) + (a2[-2], b2[-1])))


@kernel("Gemm")
@accepts("float", "int")
def gemm(inputs, attrs, ctx):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    fused = ctx.epilogue if ctx is not None else None  # a residual Add the run fused
    if (alpha == 1.0 and beta == 1.0 and c is not None and a.dtype == b.dtype == c.dtype
            == np.float32 and accumulate.product_type(a.dtype) == np.float32):
        # the bias (and a fused residual and activation) added to each tile of the product
        # on the thread that computed it, while it is in cache (the same float32 additions
        # as below, not one serial pass)
        if fused is None:
            return [accumulate.matmul(a, b, epilogue=Epilogue(bias=c))]
        fused.check(a.shape[0] * b.shape[1])
        epilogue = dataclasses.replace(fused, bias=c)
        return [accumulate.matmul(a, b, epilogue=epilogue)]
    y = accumulate.matmul(a, b) if a.dtype.kind in "fV" else np.matmul(a, b)
    if alpha != 1.0:
        y *= y.dtype.type(alpha)
    if c is not None and beta != 0:
        y += c * y.dtype.type(beta) if beta != 1.0 else c
    return [y if fused is None else fused.after(y)]


@kernel("Einsum")
@accepts("float", "int")
def einsum(inputs, attrs, ctx):
    eq = attrs["equation"].replace(" ", "")
    if inputs[0].dtype.kind in "fV":
        return [accumulate.einsum(eq, *inputs, dtype=inputs[0].dtype)]
    return [np.asarray(np.einsum(eq, *inputs, optimize=len(inputs) > 2), dtype=inputs[0].dtype)]


def integer_matmul(a, b, a_zero=None, b_zero=None):
    """Exact (a - a_zero) @ (b - b_zero) as int32, numpy broadcasting over batch dims.

    ``a_zero`` is a scalar or one value per row of ``a``; ``b_zero`` a scalar or one per
    column of ``b`` (the MatMulInteger rules).
    """
    ai = a.astype(np.int32)
    bi = b.astype(np.int32)
    if a_zero is not None:
        az = np.asarray(a_zero, dtype=np.int32)
        ai = ai - (az.reshape(-1, 1) if az.ndim == 1 and az.size > 1 else az)
    if b_zero is not None:
        bz = np.asarray(b_zero, dtype=np.int32)
        bi = bi - bz
    a1, b1 = ai.ndim == 1, bi.ndim == 1
    if a1:
        ai = ai[None, :]
    if b1:
        bi = bi[:, None]
    batch = np.broadcast_shapes(ai.shape[:-2], bi.shape[:-2])
    a3 = np.ascontiguousarray(np.broadcast_to(ai, batch + ai.shape[-2:])).reshape(-1, *ai.shape[-2:])
    b3 = np.ascontiguousarray(np.broadcast_to(bi, batch + bi.shape[-2:])).reshape(-1, *bi.shape[-2:])
    out = np.empty((a3.shape[0], a3.shape[1], b3.shape[2]), dtype=np.int32)
    exact_int_matmul(a3, b3, out)
    out = out.reshape(batch + out.shape[1:])
    if a1:
        out = out[..., 0, :]
    if b1:
        out = out[..., 0]
    return out


@kernel("MatMulInteger")
def matmul_integer(inputs, attrs, ctx):
    a, b = inputs[0], inputs[1]
    az = inputs[2] if len(inputs) > 2 else None
    bz = inputs[3] if len(inputs) > 3 else None
    if a.dtype.kind not in "iu" or b.dtype.kind not in "iu":
        raise unsupported(ctx, f"MatMulInteger on {a.dtype} x {b.dtype}")
    return [integer_matmul(a, b, az, bz)]


@kernel("QLinearMatMul")
def qlinear_matmul(inputs, attrs, ctx):
    a, a_s, az, b, b_s, bz, y_s, yz = inputs[:8]
    if a.dtype.kind not in "iu" or b.dtype.kind not in "iu":
        raise unsupported(ctx, f"QLinearMatMul on {a.dtype} x {b.dtype}")
    acc = integer_matmul(a, b, az, bz)
    a_s = np.asarray(a_s, np.float64)
    a_s = a_s.reshape(-1, 1) if a_s.size > 1 else a_s
    scale = a_s * np.asarray(b_s, np.float64) / np.asarray(y_s, np.float64)
    return [requantize(acc, scale, np.asarray(yz).astype(np.float64), yz.dtype)]

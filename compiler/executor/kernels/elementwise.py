"""Unary elementwise operators: math functions and activations.

Every kernel returns an array of its input's dtype. Float types numpy cannot compute in
directly (bfloat16, the float8 family) are computed in float32 and rounded back, which is
what a chip with a float32 datapath does too.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from npuc.ir.errors import UnsupportedError

from .. import threads
from . import in_place, reusable, select, vecmath
from .binary import _clip_flat
from .checks import checked_kernel

_NATIVE_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _is_float(x: np.ndarray) -> bool:
    return x.dtype in _NATIVE_FLOATS or (x.dtype.kind == "V" and "float" in x.dtype.name)


def _float_op(fn):
    """Apply ``fn`` in a dtype numpy computes in natively, return the input's dtype."""

    def apply(x: np.ndarray, *args):
        if x.dtype == np.float16:  # computed in float32 and rounded once, as torch does
            return np.asarray(fn(x.astype(np.float32), *args)).astype(np.float16)
        if x.dtype in _NATIVE_FLOATS:
            return np.asarray(fn(x, *args), dtype=x.dtype)
        if x.dtype.kind in "iub":
            return np.asarray(fn(x, *args)).astype(x.dtype)
        return np.asarray(fn(x.astype(np.float32), *args)).astype(x.dtype)

    return apply


def _unary(op: str, fn) -> None:
    wrapped = _float_op(fn)
    fast = _VECTOR.get(op)

    @checked_kernel(op)
    def run(inputs, attrs, ctx, _f=wrapped):
        x = inputs[0]
        if fast is not None and x.dtype == np.float32 and vecmath.fast():
            return [vecmath.apply(fast, x)]
        return [_f(x)]

    run.__name__ = op.lower()
    run.__doc__ = f"ONNX {op}."


@njit(cache=True)
def _erf_flat(x, out):
    for i in range(x.size):
        out[i] = math.erf(x[i])


# Rational approximation of erf on [-4, 4] (Eigen's float erf; beyond 4, erf is 1 in
# float32). Branch-free, so Numba vectorises it: about ten times faster than calling libm's
# erff per element, and within a few float32 ulps of it.
_ERF_ALPHA = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
              -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
              -1.60960333262415e-02)
_ERF_BETA = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
             -7.37332916720468e-03, -1.42647390514189e-02)


@njit(cache=True, error_model="numpy", nogil=True,
      fastmath={"contract", "arcp", "nsz", "reassoc"})  # not "nnan": NaN stays NaN
def _erf_flat32(x, out):
    a0, a1, a2, a3, a4, a5, a6 = _ERF_ALPHA
    b0, b1, b2, b3, b4 = _ERF_BETA
    for i in range(x.size):
        v = x[i]
        v = np.float32(-4.0) if v < -4.0 else (np.float32(4.0) if v > 4.0 else v)
        v2 = v * v
        p = ((((((a0 * v2 + a1) * v2 + a2) * v2 + a3) * v2 + a4) * v2 + a5) * v2 + a6) * v
        q = (((b0 * v2 + b1) * v2 + b2) * v2 + b3) * v2 + b4
        out[i] = p / q


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise (numpy has none)."""
    wide = np.float64 if x.dtype == np.float64 else np.float32
    flat = np.ascontiguousarray(x, dtype=wide).reshape(-1)
    out = np.empty_like(flat)
    (_erf_flat if wide == np.float64 else _erf_flat32)(flat, out)
    return out.reshape(x.shape).astype(x.dtype, copy=False)


def _power3(v):
    """v ** 3, float32 as a cube rounded once from float64 (the Pow kernel's rule)."""
    if v.dtype == np.float32:
        w = v.astype(np.float64)
        return (w * w * w).astype(np.float32)
    return v ** 3


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# float32 functions that run as vecmath's polynomials in a run with float32 products
_VECTOR = {"Exp": "exp", "Tanh": "tanh", "Sigmoid": "sigmoid"}

_SIMPLE = {
    "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt, "Sin": np.sin, "Cos": np.cos,
    "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan,
    "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh, "Acosh": np.arccosh,
    "Atanh": np.arctanh, "Floor": np.floor, "Ceil": np.ceil, "Round": np.rint,
    "Tanh": np.tanh, "Sigmoid": _sigmoid, "Erf": erf,
    "Reciprocal": lambda x: 1 / x,
    "Softplus": lambda x: np.logaddexp(0, x),
    "Softsign": lambda x: x / (1 + np.abs(x)),
    "Mish": lambda x: x * np.tanh(np.logaddexp(0, x)),
    "HardSwish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
}
for _op, _fn in _SIMPLE.items():
    _unary(_op, _fn)


@checked_kernel("Abs")
def abs_(inputs, attrs, ctx):
    """ONNX Abs (integers wrap: abs(-128) stays -128 in int8, as two's complement does)."""
    return [_float_op(np.abs)(inputs[0])]


@checked_kernel("Neg")
def neg(inputs, attrs, ctx):
    """ONNX Neg."""
    return [_float_op(np.negative)(inputs[0])]


@checked_kernel("Sign")
def sign(inputs, attrs, ctx):
    """ONNX Sign."""
    return [_float_op(np.sign)(inputs[0])]


@in_place
@checked_kernel("Relu")
def relu(inputs, attrs, ctx):
    """ONNX Relu (also on signed integers)."""
    x = inputs[0]
    dest = reusable(ctx, inputs, 0, x.shape, x.dtype)
    if x.dtype in (np.float32, np.float64) and x.flags.c_contiguous:  # blocks on the pool
        dest = np.empty_like(x) if dest is None else dest
        lo, hi = x.dtype.type(0), x.dtype.type(np.inf)  # Clip's loop: numpy's maximum's bits
        threads.by_elements(lambda v, out: _clip_flat(v, lo, hi, out), dest, x)
        return [dest]
    if dest is not None and x.dtype in _NATIVE_FLOATS:
        return [np.maximum(x, 0, out=dest)]
    return [_float_op(lambda v: np.maximum(v, 0))(x)]


@checked_kernel("LeakyRelu")
def leaky_relu(inputs, attrs, ctx):
    """ONNX LeakyRelu."""
    alpha = attrs.get("alpha", 0.01)
    x = inputs[0]
    if x.dtype in (np.float32, np.float64) and x.flags.c_contiguous:
        return [select.leaky_relu(x, alpha)]
    return [_float_op(lambda v: np.where(v < 0, v * alpha, v))(x)]


@checked_kernel("PRelu")
def prelu(inputs, attrs, ctx):
    """ONNX PRelu: the slope broadcasts to the input (unidirectionally)."""
    x, slope = inputs
    if x.dtype.kind in "iu":
        return [np.where(x < 0, x * slope.astype(x.dtype), x).astype(x.dtype)]
    return [_float_op(lambda v: np.where(v < 0, v * slope.astype(v.dtype), v))(x)]


@checked_kernel("Elu")
def elu(inputs, attrs, ctx):
    """ONNX Elu."""
    alpha = attrs.get("alpha", 1.0)
    return [_float_op(lambda v: np.where(v < 0, alpha * np.expm1(v), v))(inputs[0])]


@checked_kernel("Selu")
def selu(inputs, attrs, ctx):
    """ONNX Selu."""
    alpha = attrs.get("alpha", 1.67326319217681884765625)
    gamma = attrs.get("gamma", 1.05070102214813232421875)
    return [_float_op(lambda v: gamma * np.where(v <= 0, alpha * np.expm1(v), v))(inputs[0])]


@checked_kernel("Celu")
def celu(inputs, attrs, ctx):
    """ONNX Celu."""
    alpha = attrs.get("alpha", 1.0)
    return [_float_op(lambda v: np.maximum(v, 0) + np.minimum(0, alpha * np.expm1(v / alpha)))(
        inputs[0])]


@in_place
@checked_kernel("Gelu")
def gelu(inputs, attrs, ctx):
    """ONNX Gelu, exact (``approximate="none"``) or with the tanh approximation."""
    approximate = attrs.get("approximate", "none")
    x = inputs[0]
    if x.dtype == np.float32 and approximate in ("none", "tanh") and x.size:
        if vecmath.fast():
            dest = reusable(ctx, inputs, 0, x.shape, x.dtype)
            return [vecmath.gelu(x, approximate == "tanh", in_place=dest is not None)]
        flat = np.ascontiguousarray(x).reshape(-1)
        out = np.empty_like(flat)
        if approximate == "none":
            _gelu_erf32(flat, out)
        else:
            _gelu_tanh32(flat, out)
        return [out.reshape(x.shape)]
    if approximate == "tanh":
        c = math.sqrt(2 / math.pi)
        fn = lambda v: 0.5 * v * (1 + np.tanh(c * (v + 0.044715 * _power3(v))))
    elif approximate == "none":
        fn = lambda v: 0.5 * v * (1 + erf(v / math.sqrt(2)))
    else:
        raise UnsupportedError(f"{ctx.describe()}: approximate={approximate!r} is not supported")
    return [_float_op(fn)(inputs[0])]


@njit(cache=True, error_model="numpy", nogil=True)
def _divide32(x, d, out):
    for i in range(x.size):
        out[i] = x[i] / d


@njit(cache=True, error_model="numpy", nogil=True)
def _half_x_one_plus32(x, e, out):
    """out = 0.5 * x * (1 + e) in float32 (``e`` may be ``out``)."""
    half, one = np.float32(0.5), np.float32(1)
    for i in range(x.size):
        out[i] = (half * x[i]) * (one + e[i])


_BLOCK = 16384


def _gelu_erf32(x, out):
    """0.5 * x * (1 + erf(x / sqrt(2))) in float32, each step rounded as numpy's
    (the general path) rounds it, a cache-sized block at a time (blocks on npuc's
    threads). The scratch blocks are separate arrays: a Numba loop reading and writing
    one array through two names is not vectorised (LLVM's alias check fails)."""
    root2 = np.float32(math.sqrt(2))

    def blocks(b0, b1):
        t, e = np.empty(_BLOCK, np.float32), np.empty(_BLOCK, np.float32)
        for start in range(b0 * _BLOCK, min(x.size, b1 * _BLOCK), _BLOCK):
            xs = x[start:start + _BLOCK]
            m = xs.size
            _divide32(xs, root2, t[:m])
            _erf_flat32(t[:m], e[:m])
            _half_x_one_plus32(xs, e[:m], out[start:start + m])

    threads.by_rows(blocks, -(-x.size // _BLOCK), 2)


@njit(cache=True, error_model="numpy", nogil=True)
def _tanh_argument32(x, out):
    """sqrt(2/pi) * (x + 0.044715 * x**3) in float32, the cube rounded once from float64
    (as Pow with exponent 3 computes it)."""
    c, k = np.float32(math.sqrt(2 / math.pi)), np.float32(0.044715)
    for i in range(x.size):
        v = np.float64(x[i])
        cube = np.float32(v * v * v)
        out[i] = c * (x[i] + k * cube)


def _gelu_tanh32(x, out):
    """GELU's tanh approximation in float32 (numpy's tanh between two Numba passes),
    blocks on npuc's threads."""

    def blocks(b0, b1):
        xs, o = x[b0 * _BLOCK:b1 * _BLOCK], out[b0 * _BLOCK:b1 * _BLOCK]
        _tanh_argument32(xs, o)
        np.tanh(o, out=o)
        _half_x_one_plus32(xs, o, o)

    threads.by_rows(blocks, -(-x.size // _BLOCK), 2)


@checked_kernel("HardSigmoid")
def hard_sigmoid(inputs, attrs, ctx):
    """ONNX HardSigmoid."""
    alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
    return [_float_op(lambda v: np.clip(alpha * v + beta, 0, 1))(inputs[0])]


@checked_kernel("ThresholdedRelu")
def thresholded_relu(inputs, attrs, ctx):
    """ONNX ThresholdedRelu."""
    alpha = attrs.get("alpha", 1.0)
    return [_float_op(lambda v: np.where(v > alpha, v, 0))(inputs[0])]


@checked_kernel("Shrink")
def shrink(inputs, attrs, ctx):
    """ONNX Shrink."""
    bias, lambd = attrs.get("bias", 0.0), attrs.get("lambd", 0.5)
    x = inputs[0]
    if x.dtype.kind in "iu":
        xf = x.astype(np.float64)
        return [np.where(xf < -lambd, xf + bias, np.where(xf > lambd, xf - bias, 0)).astype(x.dtype)]
    return [_float_op(lambda v: np.where(v < -lambd, v + bias, np.where(v > lambd, v - bias, 0)))(x)]


@checked_kernel("Swish")
def swish(inputs, attrs, ctx):
    """ONNX Swish: x * sigmoid(alpha * x)."""
    alpha = attrs.get("alpha", 1.0)
    return [_float_op(lambda v: v * _sigmoid(alpha * v))(inputs[0])]


@checked_kernel("IsNaN")
def is_nan(inputs, attrs, ctx):
    """ONNX IsNaN."""
    x = inputs[0]
    return [np.isnan(x if x.dtype in _NATIVE_FLOATS else x.astype(np.float32))]


@checked_kernel("IsInf")
def is_inf(inputs, attrs, ctx):
    """ONNX IsInf, with ``detect_positive`` / ``detect_negative``."""
    x = inputs[0]
    if x.dtype not in _NATIVE_FLOATS:
        x = x.astype(np.float32)
    pos, neg_ = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    out = np.zeros(x.shape, dtype=bool)
    if pos:
        out |= np.isposinf(x)
    if neg_:
        out |= np.isneginf(x)
    return [out]


@checked_kernel("Not")
def not_(inputs, attrs, ctx):
    """ONNX Not."""
    return [np.logical_not(inputs[0])]


@checked_kernel("BitwiseNot")
def bitwise_not(inputs, attrs, ctx):
    """ONNX BitwiseNot."""
    return [np.invert(inputs[0])]

"""Float32 exp, tanh and erf that vectorise, for runs with float32 products.

numpy's float32 ``exp`` and ``tanh`` call libm once per element on this kind of machine
(about 5.6 ns an element), which made Softmax and GELU's tanh form 3.5-4.4x slower than
onnxruntime's. These are fixed polynomials in float32 arithmetic, written once as Numba
functions that inline into the loops that use them (Softmax, Tanh, GELU, attention), so
that LLVM turns each loop into vector code:

- :func:`exp32`: Cephes' ``expf`` (Cody-Waite reduction by ln 2, a degree-6 polynomial),
  the power of two applied as two factors so that results down to the subnormals round
  once; within 2 ulps of the correctly rounded value.
- :func:`tanh32`: Cephes' ``tanhf``: an odd polynomial below 0.625, ``1 - 2 / (exp(2|x|)
  + 1)`` above; within 3 ulps.
- :func:`erf32`: the rational approximation of Eigen's float ``erf`` (the one the Erf
  kernel already used in both precisions): within 8 ulps, 5e-7 absolute.

Each element's value depends on that element alone, so the results are the same on any
thread count and block cut. They are used only when a run asked for float32 products
(``threads.products() == "float32"``, what ``npuc run`` and calibration use); runs with
the IR's float64 definition keep numpy's functions and their bits.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .. import threads

# The loops that inline these polynomials compile with contraction: LLVM fuses each
# multiply and the addition that follows into one FMA (fewer instructions, one rounding
# instead of two): exp 1.1 -> 0.8 ns an element on one thread (load 3). Every loop that
# uses them is in this module or calls one that is, so they all round alike.
_FMA = {"contract"}


@intrinsic
def _bits_to_float32(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits`` (vectorises, unlike a view)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _float32_to_bits(typingctx, x):
    """The int32 bit pattern of the float32 ``x`` (vectorises, unlike a view)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@njit(inline="always", error_model="numpy")
def row_max(row):
    """The largest element of a float32 ``row`` (not empty), or one of its NaNs' values
    or any element when it holds a NaN (callers' results are NaN then anyway). Compared
    as integers whose order is the floats' order, which LLVM turns into vector code (it
    leaves a float maximum scalar: about 0.25 ns an element, this about 0.1)."""
    m = np.int32(-2147483648)
    for i in range(row.shape[0]):
        b = _float32_to_bits(row[i])
        k = np.int32(b ^ ((b >> 31) & np.int32(0x7FFFFFFF)))
        m = k if k > m else m
    return _bits_to_float32(np.int32(m ^ ((m >> 31) & np.int32(0x7FFFFFFF))))


_LOG2E = np.float32(1.44269504088896341)
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)
_EXP_HI, _EXP_LO = np.float32(89.0), np.float32(-104.0)  # beyond them: inf and 0
_EXP_P = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                        4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))


@njit(inline="always", error_model="numpy")
def exp32(x):
    """e ** x for a float32 ``x`` (NaN stays NaN, overflow gives inf, underflow 0)."""
    v = _EXP_HI if x > _EXP_HI else x
    v = _EXP_LO if v < _EXP_LO else v
    n = np.floor(v * _LOG2E + np.float32(0.5))
    n = n if n == n else np.float32(0.0)  # NaN: the polynomial carries it
    r = v - n * _LN2_HI
    r = r - n * _LN2_LO
    p0, p1, p2, p3, p4, p5 = _EXP_P
    p = (((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5) * (r * r) + r + np.float32(1)
    k = np.int32(n)
    k1 = k >> 1  # 2 ** k as two normal factors: exact down to the subnormal results
    scale1 = _bits_to_float32(np.int32((k1 + 127) << 23))
    scale2 = _bits_to_float32(np.int32((k - k1 + 127) << 23))
    return (p * scale1) * scale2


_TANH_P = tuple(np.float32(c) for c in (-5.70498872745e-3, 2.06390887954e-2,
                                         -5.37397155531e-2, 1.33314422036e-1,
                                         -3.33332819422e-1))


@njit(inline="always", error_model="numpy")
def tanh32(x):
    """tanh(x) for a float32 ``x`` (both branches computed, then one chosen: no jumps)."""
    a = abs(x)
    z = exp32(a + a)
    big = np.float32(1) - np.float32(2) / (z + np.float32(1))
    big = big if x >= 0 else -big
    s = x * x
    p0, p1, p2, p3, p4 = _TANH_P
    small = ((((p0 * s + p1) * s + p2) * s + p3) * s + p4) * s * x + x
    small = small if s != 0 else x  # keeps the sign of -0.0
    return big if a > np.float32(0.625) else small


# Eigen's rational approximation of erf on [-4, 4]; beyond 4, erf is 1 in float32
_ERF_ALPHA = tuple(np.float32(c) for c in (
    -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
    -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
    -1.60960333262415e-02))
_ERF_BETA = tuple(np.float32(c) for c in (
    -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
    -7.37332916720468e-03, -1.42647390514189e-02))


@njit(inline="always", error_model="numpy")
def erf32(x):
    """erf(x) for a float32 ``x``."""
    a0, a1, a2, a3, a4, a5, a6 = _ERF_ALPHA
    b0, b1, b2, b3, b4 = _ERF_BETA
    v = np.float32(-4.0) if x < -4.0 else (np.float32(4.0) if x > 4.0 else x)
    v2 = v * v
    p = ((((((a0 * v2 + a1) * v2 + a2) * v2 + a3) * v2 + a4) * v2 + a5) * v2 + a6) * v
    q = (((b0 * v2 + b1) * v2 + b2) * v2 + b3) * v2 + b4
    return p / q


@njit(cache=True, error_model="numpy", nogil=True, fastmath=_FMA)
def _exp_flat(x, out):
    for i in range(x.size):
        out[i] = exp32(x[i])


@njit(cache=True, error_model="numpy", nogil=True, fastmath=_FMA)
def _tanh_flat(x, out):
    for i in range(x.size):
        out[i] = tanh32(x[i])


@njit(cache=True, error_model="numpy", nogil=True, fastmath=_FMA)
def _erf_flat(x, out):
    for i in range(x.size):
        out[i] = erf32(x[i])


@njit(cache=True, error_model="numpy", nogil=True, fastmath=_FMA)
def _sigmoid_flat(x, out):
    """0.5 * (1 + tanh(0.5 x)), the formula of the Sigmoid kernel."""
    half, one = np.float32(0.5), np.float32(1)
    for i in range(x.size):
        out[i] = half * (one + tanh32(half * x[i]))


_SQRT_HALF = np.float32(math.sqrt(0.5))
_TANH_C, _TANH_K = np.float32(math.sqrt(2 / math.pi)), np.float32(0.044715)


@njit(inline="always", error_model="numpy")
def _gelu(v, tanh_form):
    half, one = np.float32(0.5), np.float32(1)
    if tanh_form:
        return (half * v) * (one + tanh32(_TANH_C * (v + _TANH_K * (v * v * v))))
    return (half * v) * (one + erf32(v * _SQRT_HALF))


@njit(cache=True, error_model="numpy", nogil=True, fastmath=_FMA)
def gelu_flat(x, out, tanh_form):
    """GELU of a flat float32 array: ``0.5 x (1 + erf(x / sqrt 2))``, or with
    ``tanh_form`` ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``, in one pass."""
    if tanh_form:
        for i in range(x.size):
            out[i] = _gelu(x[i], True)
    else:
        for i in range(x.size):
            out[i] = _gelu(x[i], False)


@njit(cache=True, error_model="numpy", nogil=True, fastmath=_FMA)
def gelu_in_place(x, tanh_form):
    """:func:`gelu_flat` writing over ``x`` (one array: LLVM vectorises a loop reading
    and writing one array, not two names of the same buffer)."""
    if tanh_form:
        for i in range(x.size):
            x[i] = _gelu(x[i], True)
    else:
        for i in range(x.size):
            x[i] = _gelu(x[i], False)


_FLAT = {"exp": _exp_flat, "tanh": _tanh_flat, "sigmoid": _sigmoid_flat, "erf": _erf_flat}
_BLOCK = 1 << 19  # the least elements of one task on npuc's threads (see norm.py)


def apply(name: str, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``name`` ("exp", "tanh", "sigmoid", "erf") of a float32 array, in blocks on npuc's
    threads; ``out`` (contiguous, of ``x``'s shape) receives it when given."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    y = np.empty_like(flat) if out is None else out.reshape(-1)
    fn = _FLAT[name]
    threads.by_rows(lambda s, e: fn(flat[s:e], y[s:e]), flat.size, _BLOCK)
    return y.reshape(x.shape)


def gelu(x: np.ndarray, tanh_form: bool, in_place: bool = False) -> np.ndarray:
    """GELU of a float32 array (:func:`gelu_flat`) in blocks on npuc's threads; with
    ``in_place`` written over ``x`` (which must then be contiguous float32)."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    if in_place:
        threads.by_rows(lambda s, e: gelu_in_place(flat[s:e], tanh_form), flat.size, _BLOCK)
        return x
    y = np.empty_like(flat)
    threads.by_rows(lambda s, e: gelu_flat(flat[s:e], y[s:e], tanh_form), flat.size, _BLOCK)
    return y.reshape(x.shape)


def fast() -> bool:
    """True in a run with float32 products, where these functions replace numpy's."""
    return threads.products() == "float32"


# activations an epilogue applies in the same pass as its bias
ACTIVATIONS = {"": 0, "Gelu": 1, "GeluTanh": 2}


@njit(cache=True, error_model="numpy", nogil=True, fastmath=_FMA)
def _bias_activation(flat, stride, rows, cols, bias, has_bias, code):
    """Rows ``flat[r * stride : r * stride + cols]`` for ``r < rows``: plus ``bias`` (when
    ``has_bias``), then activation ``code`` (:data:`ACTIVATIONS`), in place, one loop per
    row (a slice, whose indices the loop knows are not negative: it vectorises)."""
    for r in range(rows):
        row = flat[r * stride:r * stride + cols]
        if code == 0:
            for i in range(cols):
                row[i] = row[i] + bias[i]
        elif has_bias:
            if code == 1:
                for i in range(cols):
                    row[i] = _gelu(row[i] + bias[i], False)
            else:
                for i in range(cols):
                    row[i] = _gelu(row[i] + bias[i], True)
        elif code == 1:
            for i in range(cols):
                row[i] = _gelu(row[i], False)
        else:
            for i in range(cols):
                row[i] = _gelu(row[i], True)


def bias_activation(tile: np.ndarray, bias: np.ndarray | None, activation: str) -> None:
    """``tile`` (a float32 matrix, such as a block of a larger one) plus ``bias`` (float32,
    one per column, or None), then ``activation`` (one of :data:`ACTIVATIONS`), in place,
    in one pass over each row; each element's numbers are those of a float32 Add followed
    by the activation's kernel in a float32-products run."""
    rows, cols = tile.shape
    if not rows or not cols or (bias is None and not activation):
        return
    if tile.strides[1] != 4 or tile.strides[0] % 4 or tile.strides[0] < 4 * cols:
        work = np.ascontiguousarray(tile)
        bias_activation(work, bias, activation)
        tile[...] = work
        return
    stride = tile.strides[0] // 4
    # the rows as one flat array (a loop over a 2-D view with unknown strides would not
    # vectorise); the gaps between the rows are never touched
    flat = np.lib.stride_tricks.as_strided(tile, shape=((rows - 1) * stride + cols,),
                                           strides=(4,))
    b = bias if bias is not None else np.zeros(1, np.float32)
    _bias_activation(flat, stride, rows, cols, b, bias is not None, ACTIVATIONS[activation])

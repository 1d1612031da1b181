"""Broadcasting binary and variadic operators: arithmetic, comparison, logic, bitwise.

Integer arithmetic is exact and stays in the input dtype (wrapping on overflow, as the
hardware does); no value goes through a float. Division of signed integers truncates
toward zero, like C and the ONNX reference; division by zero gives 0 rather than a trap.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from npuc.ir.errors import NpucError, UnsupportedError

from .. import threads
from . import in_place, reusable, select
from .checks import checked_kernel

_NATIVE = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_FAST = (np.dtype(np.float32), np.dtype(np.float64))


def _native(x: np.ndarray) -> np.ndarray:
    """The array in a dtype numpy's ufuncs handle (float32 for bf16/float8, int16 for int4)."""
    if x.dtype.kind == "V":
        return x.astype(np.float32 if "float" in x.dtype.name else np.int16)
    return x


def _arith(fn, a: np.ndarray, b: np.ndarray, ctx) -> np.ndarray:
    out_dtype = a.dtype
    try:
        with np.errstate(all="ignore"):
            na = _native(a)
            nb = _native(b).astype(na.dtype, copy=False)
            dest = _destination(ctx, [a, b], na.dtype, np.broadcast_shapes(na.shape, nb.shape)) \
                if isinstance(fn, np.ufunc) else None
            if isinstance(fn, np.ufunc) and _blocks(na, nb):  # on the pool, in blocks
                dest = np.empty_like(na) if dest is None else dest
                threads.by_elements(fn, dest, na, nb)
                r = dest
            else:
                r = fn(na, nb) if dest is None else fn(na, nb, out=dest)
    except ValueError as e:
        raise NpucError(f"{ctx.describe()}: shapes {a.shape} and {b.shape} do not broadcast") from e
    return np.asarray(r).astype(out_dtype, copy=False)


def _blocks(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether an elementwise pass on ``a`` and ``b`` runs in blocks on npuc's threads:
    float32 or float64 operands of one shape, contiguous, large enough to share out."""
    return (a.dtype == b.dtype and a.dtype in _FAST and a.shape == b.shape
            and a.size >= 2 * threads.ELEMENTS and a.flags.c_contiguous and b.flags.c_contiguous)


def _destination(ctx, inputs, dtype, shape):
    """A donated input the result can be written into (see ``reusable``), or None."""
    for i in ctx.donated if ctx is not None else ():
        dest = reusable(ctx, inputs, i, shape, dtype)
        if dest is not None:
            return dest
    return None


def int_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b for integers, truncated toward zero, 0 where b is 0."""
    with np.errstate(all="ignore"):
        zero = b == 0
        bs = np.where(zero, 1, b).astype(b.dtype)
        q = a // bs
        if a.dtype.kind == "i":
            fix = ((a % bs) != 0) & ((a < 0) != (bs < 0))
            q = q + fix.astype(q.dtype)
        return np.where(zero, 0, q).astype(a.dtype)


def _binary(op: str, fn) -> None:
    @in_place
    @checked_kernel(op)
    def run(inputs, attrs, ctx):
        return [_arith(fn, inputs[0], inputs[1], ctx)]

    run.__name__ = op.lower()
    run.__doc__ = f"ONNX {op} (numpy-style broadcasting, result in the input dtype)."


for _op, _fn in {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
                 "BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or,
                 "BitwiseXor": np.bitwise_xor}.items():
    _binary(_op, _fn)


@in_place
@checked_kernel("Div")
def div(inputs, attrs, ctx):
    """ONNX Div; integer division truncates toward zero."""
    a, b = inputs
    if a.dtype.kind in "iu":
        return [_arith(int_divide, a, b, ctx)]
    return [_arith(np.divide, a, b, ctx)]


@checked_kernel("Mod")
def mod(inputs, attrs, ctx):
    """ONNX Mod: sign of the divisor (``fmod=0``) or of the dividend (``fmod=1``)."""
    a, b = inputs
    fmod = attrs.get("fmod", 0)
    if a.dtype.kind in "iu":
        def fn(x, y):
            ys = np.where(y == 0, 1, y).astype(y.dtype)
            r = np.fmod(x, ys) if fmod else np.mod(x, ys)
            return np.where(y == 0, 0, r)
        return [_arith(fn, a, b, ctx)]
    return [_arith(np.fmod if fmod else np.mod, a, b, ctx)]


@checked_kernel("Pow")
def pow_(inputs, attrs, ctx):
    """ONNX Pow; the result has the base's dtype whatever the exponent's type."""
    a, b = inputs
    with np.errstate(all="ignore"):
        if a.dtype.kind in "iu" and b.dtype.kind in "iu" and not np.any(b < 0):
            r = np.power(a, b.astype(a.dtype))
        elif a.dtype.kind in "iu":
            r = np.power(a.astype(np.float64), _native(b).astype(np.float64))
        elif a.dtype == np.float32 and b.size == 1 and float(b.reshape(-1)[0]) == 3.0:
            r = _cube(np.ascontiguousarray(a).reshape(-1)).reshape(a.shape)
        else:
            na = _native(a)
            r = np.power(na, _native(b).astype(na.dtype))
        return [np.asarray(r).astype(a.dtype)]


@nb.njit(cache=True)
def _cube(x):
    """x ** 3 for float32 ``x``: the exact square times x in float64, rounded once (GELU's
    cube in GPT-2; ten times faster than libm's powf, and correctly rounded where powf is
    not)."""
    out = np.empty_like(x)
    for i in range(x.size):
        v = np.float64(x[i])
        out[i] = v * v * v
    return out


@checked_kernel("BitShift")
def bit_shift(inputs, attrs, ctx):
    """ONNX BitShift on unsigned integers."""
    a, b = inputs
    direction = attrs.get("direction", "")
    fn = {"LEFT": np.left_shift, "RIGHT": np.right_shift}.get(direction)
    if fn is None:
        raise NpucError(f"{ctx.describe()}: direction must be LEFT or RIGHT, not {direction!r}")
    return [fn(a, b.astype(a.dtype)).astype(a.dtype)]


def _compare(op: str, fn) -> None:
    @checked_kernel(op)
    def run(inputs, attrs, ctx):
        a, b = inputs
        if a.dtype == object or b.dtype == object:
            return [np.asarray(fn(a.astype(object), b.astype(object)), dtype=bool)]
        return [np.asarray(fn(_native(a), _native(b)), dtype=bool)]

    run.__name__ = op.lower()
    run.__doc__ = f"ONNX {op} (a boolean tensor)."


for _op, _fn in {"Equal": np.equal, "Less": np.less, "LessOrEqual": np.less_equal,
                 "Greater": np.greater, "GreaterOrEqual": np.greater_equal,
                 "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}.items():
    _compare(_op, _fn)


def _variadic(op: str, fn, mean: bool = False) -> None:
    @checked_kernel(op)
    def run(inputs, attrs, ctx):
        xs = [x for x in inputs if x is not None]
        if not xs:
            raise NpucError(f"{ctx.describe()}: needs at least one input")
        dtype = xs[0].dtype
        acc = _native(xs[0])
        with np.errstate(all="ignore"):
            for x in xs[1:]:
                acc = fn(acc, _native(x).astype(acc.dtype, copy=False))
            if mean:
                acc = acc / len(xs) if acc.dtype.kind == "f" else acc // len(xs)
        return [np.asarray(acc).astype(dtype, copy=False)]

    run.__name__ = op.lower()
    run.__doc__ = f"ONNX {op} over any number of broadcasting inputs."


_variadic("Sum", np.add)
_variadic("Mean", np.add, mean=True)
_variadic("Max", np.maximum)
_variadic("Min", np.minimum)


@checked_kernel("Where")
def where(inputs, attrs, ctx):
    """ONNX Where."""
    c, x, y = inputs
    fast = select.where(c, x, y)  # (large same-shape operands: without branches)
    return [fast if fast is not None else np.where(c, x, y).astype(x.dtype, copy=False)]


@nb.njit(cache=True, nogil=True, inline="always")
def clip_value(v, lo, hi):
    """np.minimum(np.maximum(v, lo), hi), bit for bit (NaN stays NaN, an equal bound
    wins, so -0.0 clipped at 0.0 gives 0.0, as numpy's maximum does)."""
    if not (v > lo or v != v):
        v = lo
    if not (v < hi or v != v):
        v = hi
    return v


@nb.njit(cache=True, nogil=True)
def _clip_flat(x, lo, hi, out):
    """:func:`clip_value` of every element, in one pass."""
    for i in range(x.size):
        out[i] = clip_value(x[i], lo, hi)


@in_place
@checked_kernel("Clip")
def clip(inputs, attrs, ctx):
    """ONNX Clip; bounds are attributes before opset 11 and optional inputs from 11 on.

    ``min > max`` gives ``max`` everywhere, as the specification says.
    """
    x = inputs[0]
    if ctx.opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    else:
        lo = inputs[1] if len(inputs) > 1 else None
        hi = inputs[2] if len(inputs) > 2 else None
    out = _native(x)
    bounds = []
    for bound, name in ((lo, "min"), (hi, "max")):
        if bound is not None and np.ndim(bound) != 0 and np.size(bound) != 1:
            raise UnsupportedError(f"{ctx.describe()}: a non-scalar {name} is not supported")
        bounds.append(None if bound is None else np.asarray(bound).reshape(()).astype(out.dtype))
    dest = reusable(ctx, inputs, 0, out.shape, out.dtype)  # in place when x dies here
    if x.dtype in _FAST and x.flags.c_contiguous:
        if dest is None:
            dest = np.empty_like(x)
        fill = (x.dtype.type(-np.inf), x.dtype.type(np.inf))  # a missing bound changes nothing
        lo, hi = (fill[i] if b is None else b[()] for i, b in enumerate(bounds))
        threads.by_elements(lambda v, out: _clip_flat(v, lo, hi, out), dest, x)
        return [dest]
    for bound, fn in zip(bounds, (np.maximum, np.minimum)):
        if bound is not None:
            out = fn(out, bound) if dest is None else fn(out, bound, out=dest)
            # the second bound applies in place on the first one's result (not a scalar)
            dest = out if isinstance(out, np.ndarray) and out.ndim else None
    return [np.asarray(out).astype(x.dtype, copy=False)]

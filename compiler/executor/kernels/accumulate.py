"""How npuc defines the number a dot product gives.

Every floating-point matrix product, convolution and einsum in npuc accumulates its
products in float64 and rounds the sum once to the result type (float32, or the narrow
type of the inputs). That is the IR's definition of these operators, and the graph
interpreter and the command-stream simulator both compute it through the functions
below.

Why: a float32 sum depends on the order of its additions, and BLAS picks the order from
the matrix sizes, the thread count and the position of an element in its block. A
program tiled along M or N would then differ from the whole-tensor product in the last
bit of float32, and a later rounding to bf16, fp16 or fp8 turns one float32 ulp into a
whole narrow-type step (program-vs-IR SQNR around 50 dB on BERT-base at bf16). A float64
sum of float32 products carries 29 more bits than the result keeps, so every order BLAS
may choose gives the same float32 after the one rounding, except for sums that fall
within about 2^-53 of a float32 rounding boundary (an event too rare to meet in a model).

The products of bf16, fp16 and fp8 inputs are exact in float64, so the chips' "multiply
narrow, accumulate wide" is what this computes; a chip that accumulates in float32 with a
fixed order differs from it by float32 rounding of partial sums, which is below every
verification tolerance.
"""

from __future__ import annotations

import numpy as np


def result_type(*arrays) -> np.dtype:
    """The type a float product of ``arrays`` is rounded to: the widest input float type
    (ml_dtypes' narrow floats keep their own type)."""
    dts = [np.asarray(a).dtype for a in arrays]
    if any(d.kind == "V" for d in dts):
        return dts[0]
    return np.result_type(*dts)


def wide(a) -> np.ndarray:
    """``a`` as float64 (a no-op for float64 input)."""
    a = np.asarray(a)
    return a if a.dtype == np.float64 else a.astype(np.float64)


def matmul(a, b, out: np.ndarray | None = None, dtype=None) -> np.ndarray:
    """``a @ b`` (numpy broadcasting), accumulated in float64 and rounded once.

    ``out``, when given, receives the result (any layout numpy can write); ``dtype`` is the
    result type when there is no ``out`` (default: :func:`result_type`).
    """
    y = np.matmul(wide(a), wide(b))
    if out is not None:
        np.copyto(out, y.reshape(out.shape), casting="unsafe")
        return out
    return y.astype(dtype if dtype is not None else result_type(a, b))


def einsum(equation: str, *operands, dtype=None) -> np.ndarray:
    """``np.einsum`` accumulated in float64 and rounded once."""
    y = np.einsum(equation, *(wide(o) for o in operands), optimize=len(operands) > 2)
    return np.asarray(y).astype(dtype if dtype is not None else result_type(*operands))

"""The tile epilogue of a matrix product (``accumulate.matmul(..., epilogue=...)``): the
bias and activation applied to each finished tile give the numbers of the separate Add
and activation kernels, in both product precisions and on any thread count."""

from __future__ import annotations

import numpy as np
import pytest

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import KernelContext, accumulate
from npuc.compiler.executor.kernels.epilogue import Epilogue, activate

ACTIVATIONS = [("", ()), ("Relu", ()), ("Clip", (0.0, 6.0)), ("LeakyRelu", (0.1,)),
               ("Sigmoid", ()), ("HardSwish", ()), ("Gelu", ())]
# (a, b, bias): a column bias, a row bias, a batched row bias, none
CASES = [((3, 300, 40), (40, 500), (500,)), ((700, 24), (24, 90), (700, 1)),
         ((2, 3, 260, 20), (2, 3, 20, 400), (3, 260, 1)), ((2, 37), (37, 11), None)]


@pytest.mark.parametrize("mode", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_an_epilogue_gives_the_numbers_of_the_separate_kernels(monkeypatch, mode, case):
    rng = np.random.default_rng(len(case[0]))
    a = rng.standard_normal(case[0]).astype(np.float32)
    b = rng.standard_normal(case[1]).astype(np.float32)
    bias = None if case[2] is None else rng.standard_normal(case[2]).astype(np.float32)
    for act, params in ACTIVATIONS:
        got = []
        for n in ("1", "2", "3"):
            monkeypatch.setenv("NPUC_BLAS_THREADS", n)
            with threads.product_precision(mode):
                got.append(accumulate.matmul(a, b, epilogue=Epilogue(bias, act, params)))
                y = accumulate.matmul(a, b)
                # the separate kernels of the same run (float32 runs have their own exp)
                want = activate(y if bias is None else y + bias, act, params, KernelContext())
        assert got[0].dtype == np.float32
        assert all(np.array_equal(g, want) for g in got), (act, mode)


def test_an_epilogue_writes_into_out_and_a_narrow_result_is_rounded_first():
    import ml_dtypes

    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 30)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((30, 20)).astype(ml_dtypes.bfloat16)
    out = np.empty((6, 20), ml_dtypes.bfloat16)
    with threads.product_precision("float32"):
        got = accumulate.matmul(a, b, out=out, epilogue=Epilogue(activation="Relu"))
        want = np.maximum(accumulate.matmul(a, b), 0)
    assert got is out and np.array_equal(got.astype(np.float32), want.astype(np.float32))

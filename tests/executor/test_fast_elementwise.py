"""The one-pass float32 kernels give the bits of the step-by-step definition."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npuc.compiler.executor.kernels import KernelContext, get_kernel
from npuc.compiler.executor.kernels.elementwise import _power3, erf

floats32 = arrays(np.float32, st.integers(1, 40000),
                  elements=st.floats(-20, 20, width=32, allow_subnormal=False) | st.sampled_from(
                      [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 3e38]))


@settings(max_examples=30, deadline=None)
@given(floats32)
def test_gelu_in_one_pass_is_the_step_by_step_formula(x):
    gelu = get_kernel("Gelu", "", 20)
    c = math.sqrt(2 / math.pi)
    with np.errstate(all="ignore"):
        exact = 0.5 * x * (1 + erf(x / math.sqrt(2)))
        tanh = 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * _power3(x))))
        got = gelu([x], {}, KernelContext(opset=20))[0]
        got_tanh = gelu([x], {"approximate": "tanh"}, KernelContext(opset=20))[0]
    assert got.dtype == got_tanh.dtype == np.float32
    assert np.array_equal(got, exact, equal_nan=True)
    assert np.array_equal(got_tanh, tanh, equal_nan=True)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, st.integers(1, 300),
              elements=st.floats(-2.0**40, 2.0**40, width=32, allow_subnormal=False)))
def test_the_cube_is_correctly_rounded(x):
    pow_ = get_kernel("Pow", "", 17)
    with np.errstate(all="ignore"):
        got = pow_([x, np.array(3.0, np.float32)], {}, KernelContext())[0]
    assert got.dtype == np.float32
    for v, r in zip(x[:50], got[:50]):
        if not np.isfinite(r):
            continue
        exact = Fraction(float(v)) ** 3
        neighbours = [np.nextafter(r, np.float32(-np.inf)), np.nextafter(r, np.float32(np.inf))]
        assert all(abs(Fraction(float(r)) - exact) <= abs(Fraction(float(n)) - exact)
                   for n in neighbours)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 300), st.integers(0, 2**16))
def test_softmax_by_rows_is_the_step_by_step_definition(rows, n, seed):
    from npuc.compiler.executor.kernels.accumulate import wide_sum
    from npuc.compiler.executor.kernels.norm import softmax_array

    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, 3, n)) * 8).astype(np.float32)
    specials = np.array([np.nan, np.inf, -np.inf, 0.0], np.float32)
    x.reshape(-1)[rng.integers(0, x.size, 3)] = specials[rng.integers(0, 4, 3)]
    with np.errstate(all="ignore"):
        e = x - x.max(axis=-1, keepdims=True)
        np.exp(e, out=e)
        e /= wide_sum(e, -1).astype(np.float32)
        got = softmax_array(x, -1)
    assert got.dtype == np.float32 and np.array_equal(got, e, equal_nan=True)


def test_row_kernels_give_the_same_bits_on_any_thread_count(monkeypatch):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 300, 257)).astype(np.float32)
    scale, bias = rng.standard_normal(257).astype(np.float32), np.ones(257, np.float32)
    ops = [("Softmax", [x], {}), ("Gelu", [x], {}), ("Gelu", [x], {"approximate": "tanh"}),
           ("LayerNormalization", [x, scale, bias], {})]
    runs = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        runs.append([get_kernel(op, "", 20)(args, attrs, KernelContext(opset=20))[0]
                     for op, args, attrs in ops])
    assert all(np.array_equal(a, b) for run in runs[1:] for a, b in zip(run, runs[0]))

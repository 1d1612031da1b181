"""The vectorised float32 functions of float32-products runs: within a few ulps of the
true values, special values as libm gives them, and only in that mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import KernelContext, get_kernel, vecmath
from npuc.compiler.executor.kernels.norm import softmax_array


def _ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Distance in float32 steps between ``got`` and the float64 ``exact`` rounded."""
    want = exact.astype(np.float32)

    def ordered(a):
        i = a.view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    return np.abs(ordered(got) - ordered(want))


def _finite(lo, hi):
    return arrays(np.float32, st.integers(1, 3000),
                  elements=st.floats(lo, hi, width=32, allow_subnormal=False))


@settings(max_examples=40, deadline=None)
@given(_finite(-87.0, 88.0))
def test_exp_is_within_two_ulps(x):
    assert _ulps(vecmath.apply("exp", x), np.exp(x.astype(np.float64))).max() <= 2


@settings(max_examples=20, deadline=None)
@given(_finite(-103.0, -87.5))
def test_exp_rounds_subnormal_results_once(x):
    exact = np.exp(x.astype(np.float64))
    got = vecmath.apply("exp", x)
    assert np.all(np.abs(got - exact) <= 2 * 2.0 ** -149)


@settings(max_examples=40, deadline=None)
@given(_finite(-30.0, 30.0))
def test_tanh_is_within_three_ulps(x):
    assert _ulps(vecmath.apply("tanh", x), np.tanh(x.astype(np.float64))).max() <= 3


_exact_erf = np.vectorize(math.erf)


@settings(max_examples=30, deadline=None)
@given(_finite(-10.0, 10.0))
def test_erf_is_within_eight_ulps_where_it_is_not_small(x):
    got = vecmath.apply("erf", x)
    exact = _exact_erf(x.astype(np.float64))
    big = np.abs(exact) > 1e-3
    # Eigen's approximation: 7 ulps next to its clamp at 4, where erf is nearly 1
    assert _ulps(got[big], exact[big]).max(initial=0) <= 8
    assert np.all(np.abs(got - exact) <= 5e-7)


def test_special_values_are_those_of_libm():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.73, 100.0, -104.0, -200.0, 1e-30],
                 np.float32)
    with np.errstate(all="ignore"):
        for name, ref in (("exp", np.exp), ("tanh", np.tanh)):
            got, want = vecmath.apply(name, x), ref(x)
            assert np.array_equal(got, want, equal_nan=True), name
    assert np.signbit(vecmath.apply("tanh", x)[4])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 300), st.integers(0, 2**16))
def test_softmax_in_float32_mode_is_close_to_the_exact_one(rows, n, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, 3, n)) * 8).astype(np.float32)
    with threads.product_precision("float32"):
        got = softmax_array(x, -1)
    e = np.exp((x - x.max(-1, keepdims=True)).astype(np.float64))  # the float32 difference
    exact = e / e.sum(-1, keepdims=True)
    assert np.all(np.abs(got - exact) <= 4 * np.finfo(np.float32).eps * exact + 1e-45)


@pytest.mark.parametrize("op", ["Exp", "Tanh", "Sigmoid", "Softmax", "Gelu"])
def test_the_float64_definition_keeps_numpys_functions(op):
    """Only a float32-products run changes the functions' bits."""
    x = np.random.default_rng(1).standard_normal((7, 300)).astype(np.float32) * 4
    k = get_kernel(op, "", 20)
    ctx = KernelContext(opset=20)
    exact = k([x], {}, ctx)[0]
    with threads.product_precision("float32"):
        fast = k([x], {}, ctx)[0]
    if op == "Exp":
        assert np.array_equal(exact, np.exp(x))
    if op == "Tanh":
        assert np.array_equal(exact, np.tanh(x))
    assert fast.dtype == exact.dtype == np.float32
    np.testing.assert_allclose(fast, exact, rtol=3e-6, atol=1e-6)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_in_float32_mode_is_close_to_the_exact_function(approximate):
    x = np.linspace(-12, 12, 5001, dtype=np.float32)
    w = x.astype(np.float64)
    if approximate == "tanh":
        exact = 0.5 * w * (1 + np.tanh(math.sqrt(2 / math.pi) * (w + 0.044715 * w ** 3)))
    else:
        exact = 0.5 * w * (1 + _exact_erf(w / math.sqrt(2)))
    with threads.product_precision("float32"):
        got = get_kernel("Gelu", "", 20)([x], {"approximate": approximate},
                                         KernelContext(opset=20))[0]
    # near its negative tail GELU is a difference of nearly equal numbers: an absolute bound
    assert np.all(np.abs(got - exact) <= 6e-7 * np.maximum(np.abs(w), 1))

"""Where and LeakyRelu without branches (kernels/select.py) and Relu: numpy's bits on any
values (NaN, zeros of both signs, infinities, subnormals), types and thread counts, and
through the executor's kernels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import KernelContext, get_kernel, select

SPECIALS = (np.nan, -0.0, 0.0, np.inf, -np.inf)


def _values(rng, size, dtype):
    x = rng.standard_normal(size).astype(dtype)
    for k, v in enumerate(SPECIALS + (np.finfo(dtype).tiny / 4,)):
        x[k::7 + 2 * k] = v
    return x


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def _on_threads(size, fn):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NPUC_BLAS_THREADS", str(size))
        with threads.blas_limit():
            return fn()


@settings(max_examples=20, deadline=None)
@given(size=st.integers(1, 3 * threads.ELEMENTS), dtype=st.sampled_from([np.float32, np.float64]),
       alpha=st.sampled_from([0.01, 0.2, 1 / 3, -2.0, 0.0]), workers=st.integers(1, 3),
       seed=st.integers(0, 2**31))
def test_relu_and_leaky_relu_are_numpys_bits(size, dtype, alpha, workers, seed):
    x = _values(np.random.default_rng(seed), size, dtype)
    relu = get_kernel("Relu", "", 17)
    out = _on_threads(workers, lambda: relu([x], {}, KernelContext(opset=17, num_outputs=1))[0])
    assert np.array_equal(_bits(out), _bits(np.maximum(x, dtype(0))))
    got = _on_threads(workers, lambda: select.leaky_relu(x, alpha))
    with np.errstate(invalid="ignore"):  # (-inf * 0: NaN, in both)
        want = np.where(x < 0, x * alpha, x)
    assert want.dtype == dtype and np.array_equal(_bits(got), _bits(want))


@settings(max_examples=20, deadline=None)
@given(size=st.integers(threads.ELEMENTS, 3 * threads.ELEMENTS),
       dtype=st.sampled_from([np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_]),
       form=st.sampled_from(["arrays", "scalar x", "scalar y", "one-element y"]),
       workers=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_where_is_numpys_where(size, dtype, form, workers, seed):
    rng = np.random.default_rng(seed)
    c = rng.random(size) < 0.5
    if np.dtype(dtype).kind == "f":
        x, y = _values(rng, size, dtype), _values(rng, size, dtype)[::-1].copy()
    else:
        x, y = rng.integers(0, 2, size).astype(dtype), rng.integers(0, 2, size).astype(dtype)
    if form == "scalar x":
        x = np.array(x[0])
    elif form == "scalar y":
        y = np.array(y[1])
    elif form == "one-element y":
        y = y[:1].copy()
    got = _on_threads(workers, lambda: select.where(c, x, y))
    assert got is not None
    assert np.array_equal(_bits(got), _bits(np.where(c, x, y)))


def test_where_leaves_what_it_does_not_take_to_numpy():
    c = np.ones((4, threads.ELEMENTS), bool)
    x = np.zeros((4, threads.ELEMENTS), np.float32)
    assert select.where(c, x, np.zeros(threads.ELEMENTS, np.float32)) is None  # broadcast
    assert select.where(c, x, x.astype(np.float64)) is None  # two types
    assert select.where(c[:, ::2], x[:, ::2], x[:, ::2]) is None  # not contiguous
    assert select.where(c[:1, :10], x[:1, :10], x[:1, :10]) is None  # small: numpy's


def test_the_kernels_take_the_loops_and_keep_numpys_bits():
    rng = np.random.default_rng(3)
    x = _values(rng, 2 * threads.ELEMENTS + 5, np.float32).reshape(1, -1)
    ctx = KernelContext(opset=17, num_outputs=1)
    relu = get_kernel("Relu", "", 17)([x], {}, ctx)[0]
    leaky = get_kernel("LeakyRelu", "", 17)([x], {"alpha": 0.1}, ctx)[0]
    c = x > 0.5
    where = get_kernel("Where", "", 17)([c, x, np.array(np.float32(-np.inf))], {}, ctx)[0]
    assert np.array_equal(_bits(relu), _bits(np.maximum(x, np.float32(0))))
    assert np.array_equal(_bits(leaky), _bits(np.where(x < 0, x * 0.1, x)))
    assert np.array_equal(_bits(where), _bits(np.where(c, x, np.float32(-np.inf))))

"""Relu, Clip and the arithmetic of two equal shapes run in blocks on npuc's threads:
every element is numpy's, and the bits do not depend on the thread count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import KernelContext, get_kernel

specials = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 6.0])


def _values(dtype):
    width = 32 if dtype == np.float32 else 64
    return arrays(dtype, st.integers(1, 700),
                  elements=st.floats(-10, 10, width=width, allow_subnormal=False) | specials)


def _on_threads(monkeypatch, run):
    """``run()`` with 1, 2 and 3 threads and blocks of 16 elements."""
    monkeypatch.setattr(threads, "ELEMENTS", 16)
    got = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        got.append(run())
    return got


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([np.float32, np.float64]).flatmap(
    lambda t: st.tuples(_values(t), _values(t))), st.sampled_from(["Add", "Sub", "Mul"]),
       st.booleans())
def test_binary_arithmetic_in_blocks_is_numpys(pair, op, donate):
    a, b = pair
    b = np.resize(b, a.shape).astype(a.dtype)
    with np.errstate(all="ignore"):
        want = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op](a, b)
    with pytest.MonkeyPatch.context() as mp:
        ctx = KernelContext(donated=(0,) if donate else ())
        got = _on_threads(mp, lambda: get_kernel(op)([a.copy(), b], {}, ctx)[0])
    assert all(g.dtype == a.dtype and np.array_equal(g, want, equal_nan=True) for g in got)
    assert all(np.array_equal(g.view(np.uint8), want.view(np.uint8)) for g in got)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([np.float32, np.float64]).flatmap(_values),
       st.sampled_from([(0.0, 6.0), (-1.0, 1.0), (0.0, 0.0), (2.0, -2.0)]), st.booleans())
def test_relu_and_clip_in_blocks_are_numpys(x, bounds, donate):
    lo, hi = (x.dtype.type(v) for v in bounds)
    ctx = KernelContext(donated=(0,) if donate else (), opset=13)
    with pytest.MonkeyPatch.context() as mp:
        relu = _on_threads(mp, lambda: get_kernel("Relu")([x.copy()], {}, ctx)[0])
        clip = _on_threads(mp, lambda: get_kernel("Clip", "", 13)([x.copy(), lo, hi], {},
                                                                    ctx)[0])
    for got, want in ((relu, np.maximum(x, x.dtype.type(0))),
                      (clip, np.minimum(np.maximum(x, lo), hi))):
        assert all(np.array_equal(g.view(np.uint8), want.view(np.uint8)) for g in got)


def test_broadcasting_and_strided_operands_keep_the_whole_pass(monkeypatch):
    monkeypatch.setattr(threads, "ELEMENTS", 4)
    monkeypatch.setenv("NPUC_BLAS_THREADS", "2")
    x = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    row = np.arange(5, dtype=np.float32)
    assert np.array_equal(get_kernel("Add")([x, row], {}, KernelContext())[0], x + row)
    view = x[:, ::2]
    assert np.array_equal(get_kernel("Mul")([view, view], {}, KernelContext())[0], view * view)
    assert np.array_equal(get_kernel("Relu")([x[:, :, ::-1] - 30], {}, KernelContext())[0],
                          np.maximum(x[:, :, ::-1] - 30, 0))


def test_zero_dimensional_arrays(monkeypatch):
    monkeypatch.setattr(threads, "ELEMENTS", 1)
    monkeypatch.setenv("NPUC_BLAS_THREADS", "2")
    x = np.array(-3.5, np.float32)
    ctx = KernelContext(opset=13)
    assert get_kernel("Relu")([x], {}, ctx)[0] == 0
    clipped = get_kernel("Clip", "", 13)([x, np.float32(-1), np.float32(1)], {}, ctx)[0]
    assert clipped.shape == () and clipped == -1
    assert get_kernel("Add")([x, np.array(1.0, np.float32)], {}, ctx)[0] == -2.5

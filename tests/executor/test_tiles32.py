"""Register-tile float32 products and the eight-channel depthwise convolution: every
element is one fma chain whatever block it is computed in, the epilogue in registers is
the separate float32 operations, and the depthwise lanes give the planes' bits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import conv_columns, conv_tasks, tiles32
from npuc.compiler.executor.kernels.conv import conv_nd
from npuc.compiler.executor.kernels.conv_depthwise import _depthwise2d, _depthwise_lanes, _depthwise_planes
from npuc.compiler.executor.kernels.epilogue import Epilogue

NONE = np.empty(0, np.float32)


def _gemm(a, b, ldb_pad=0, bias=NONE, res=NONE, lo=1.0, hi=0.0, flags=0):
    """``a @ b`` by tiles32.gemm, ``b`` stored with ``ldb_pad`` extra columns per row."""
    m, k = a.shape
    n = b.shape[1]
    store = np.full((k, n + ldb_pad), np.nan, np.float32)  # the padding is never read
    store[:, :n] = b
    c = np.full((m, n), np.nan, np.float32)
    tiles32.gemm(a.reshape(-1), 0, k, m, k, store.reshape(-1), 0, n + ldb_pad, n,
                 c.reshape(-1), 0, n, bias, res.reshape(-1) if res.size else res,
                 np.float32(lo), np.float32(hi), flags)
    return c


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 45), k=st.integers(1, 300), n=st.integers(1, 500),
       pad=st.integers(0, 5), seed=st.integers(0, 2**31))
def test_products_are_close_to_float64_and_do_not_depend_on_the_cut(m, k, n, pad, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = _gemm(a, b, pad)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.allclose(c, exact, rtol=0, atol=1e-5 * k)
    # any rows and any columns, computed on their own, have the same bits
    r0, r1 = sorted(rng.integers(0, m + 1, 2))
    c0, c1 = sorted(rng.integers(0, n + 1, 2))
    if r1 > r0 and c1 > c0:
        part = _gemm(a[r0:r1], np.ascontiguousarray(b[:, c0:c1]))
        assert part.tobytes() == c[r0:r1, c0:c1].tobytes()


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 9), k=st.integers(1, 40), n=st.integers(1, 60),
       bounds=st.sampled_from([(0.0, np.inf), (0.0, 6.0), (-0.5, 0.5), (2.0, 2.0)]),
       parts=st.integers(0, 7), seed=st.integers(0, 2**31))
def test_the_epilogue_in_registers_is_the_separate_float32_operations(m, k, n, bounds, parts,
                                                                      seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(m).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32)
    res.flat[rng.integers(0, res.size, 3)] = [np.nan, -0.0, np.inf]
    flags = ((tiles32.BIAS if parts & 1 else 0) | (tiles32.RESIDUAL if parts & 2 else 0) |
             (tiles32.CLAMP if parts & 4 else 0))
    got = _gemm(a, b, 0, bias, res, *bounds, flags)
    want = _gemm(a, b)
    if parts & 1:
        want = want + bias[:, None]
    if parts & 2:
        want = want + res
    if parts & 4:  # as the Clip kernel: np.minimum(np.maximum(x, lo), hi)
        want = np.minimum(np.maximum(want, np.float32(bounds[0])), np.float32(bounds[1]))
    assert got.tobytes() == want.tobytes()


@settings(max_examples=40, deadline=None)
@given(s=st.tuples(st.integers(1, 2), st.integers(1, 2)), k=st.sampled_from([(3, 3), (5, 5),
                                                                             (1, 3), (2, 1)]),
       d=st.integers(1, 2), c=st.integers(1, 19), h=st.integers(1, 16), w=st.integers(1, 16),
       p=st.tuples(st.integers(0, 2), st.integers(0, 2)), wide=st.booleans(),
       clamp=st.booleans(), double=st.booleans(), view=st.booleans(),
       seed=st.integers(0, 2**31))
def test_depthwise_lanes_are_the_planes_to_the_bit(s, k, d, c, h, w, p, wide, clamp, double,
                                                   view, seed):
    """Any shape, stride, dilation and padding; float32 or float64 sums of float32 or
    (in float64) float64 inputs, laid out in order or not: the interleaving transposes
    move data only."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, h, w)).astype(np.float64 if wide and double else np.float32)
    if view:  # every other column of a wider array
        x = np.repeat(x, 2, axis=3)[..., ::2]
    kernel = rng.standard_normal((c, 1, *k)).astype(np.float32)
    oh = (h + 2 * p[0] - (k[0] - 1) * d - 1) // s[0] + 1
    ow = (w + 2 * p[1] - (k[1] - 1) * d - 1) // s[1] + 1
    if oh < 1 or ow < 1:
        return
    zero = np.float64(0) if wide else np.float32(0)
    bias = rng.standard_normal(c).astype(zero.dtype)
    lo, hi = (zero.dtype.type(0), zero.dtype.type(0.5)) if clamp else (zero.dtype.type(1),
                                                                        zero.dtype.type(0))
    want, got = (np.empty((2, c, oh, ow), np.float32) for _ in range(2))
    c0 = min(c - 1, 3)  # a block of channels that does not start at zero
    for out in (want, got):
        out[:] = 7.0  # channels outside the block stay
    _depthwise_planes(x, kernel, want, c0, c, *s, *p, d, d, 1, zero, bias, lo, hi)
    _depthwise_lanes(x, kernel, got, c0, c, *s, *p, d, d, zero, bias, lo, hi)
    assert got.tobytes() == want.tobytes()
    if wide and not clamp:  # the definition, without its bias
        plain = np.empty_like(got)
        _depthwise_lanes(x, kernel, plain, 0, c, *s, *p, d, d, zero, bias[:0], lo, hi)
        exact = np.empty_like(got)
        _depthwise2d(x, kernel, exact, *s, *p, d, d, 1)
        assert plain.tobytes() == exact.tobytes()


def test_pointwise_convolutions_of_few_channels_take_tiles_and_keep_their_bits(monkeypatch):
    """A 1x1 convolution of 24 input channels with a fused clamp and residual: register
    tiles, the same bits on 1 and 2 threads, and the separate operations' bits."""
    calls = []
    real = conv_tasks.pointwise

    def spy(*args):  # (its blocks call tiles32.gemm from Numba when ``tiled``)
        calls.append(args[6])
        return real(*args)

    monkeypatch.setattr(conv_tasks, "pointwise", spy)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 24, 14, 15)).astype(np.float32)
    w = rng.standard_normal((40, 24, 1, 1)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    res = rng.standard_normal((2, 40, 14, 15)).astype(np.float32)
    got = []
    for n in ("1", "2"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        with threads.product_precision("float32"):
            got.append(conv_nd(x, w, b, activation=Epilogue(None, "Clip", (0.0, 1.5),
                                                            residual=res)))
    assert calls and all(calls) and got[0].tobytes() == got[1].tobytes()
    with threads.product_precision("float32"):
        plain = conv_nd(x, w, b)
    want = np.minimum(np.maximum(plain + res, np.float32(0)), np.float32(1.5))
    assert got[0].tobytes() == want.tobytes()
    exact = conv_nd(x, w, b)  # float64 products: the definition
    assert np.allclose(plain, exact, rtol=1e-5, atol=1e-5)
    assert conv_columns.TILES_MAX_K >= 24


def test_depthwise_convolutions_of_small_planes_keep_their_bits_on_any_thread_count(
        monkeypatch):
    """Through conv_nd, in blocks of whole groups of eight channels: the same bits on 1,
    2 and 3 threads as the per-plane loop (LANES_AREA = 0) gives."""
    from npuc.compiler.executor.kernels import conv_depthwise

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 37, 9, 11)).astype(np.float32)
    w = rng.standard_normal((37, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(37).astype(np.float32)
    relu = Epilogue(None, "Relu")
    got = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        with threads.product_precision("float32"):
            got.append(conv_nd(x, w, b, [2, 1], [1, 1, 1, 1], [1, 1], 37, activation=relu))
    monkeypatch.setattr(conv_depthwise, "LANES_AREA", 0)
    with threads.product_precision("float32"):
        want = conv_nd(x, w, b, [2, 1], [1, 1, 1, 1], [1, 1], 37, activation=relu)
    assert all(g.tobytes() == want.tobytes() for g in got)


@pytest.mark.parametrize("products", ["float32", "float64"])
def test_a_convolution_of_no_input_channels_is_its_bias(products):
    b = np.arange(4, dtype=np.float32)
    with threads.product_precision(products):
        y = conv_nd(np.ones((2, 0, 5, 3), np.float32), np.ones((4, 0, 1, 1), np.float32), b)
    assert y.shape == (2, 4, 5, 3)
    assert np.array_equal(y, np.broadcast_to(b.reshape(1, 4, 1, 1), y.shape))

"""Float32 products (``execute(..., products="float32")``): close to the IR's float64
definition, the same bits on any thread count, and float64 wherever a program is judged."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npuc
from npuc.compiler.executor import threads
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.executor.kernels import accumulate, products32
from npuc.compiler.executor.kernels.conv import conv_nd
from npuc.ir.errors import InputError


def _in32(fn, *args, **kw):
    with threads.product_precision("float32"):
        return fn(*args, **kw)


def _bound(a, b):
    """A float32 sum's error bound: K ulps of the sum of absolute products."""
    k = a.shape[-1]
    return np.matmul(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64)) * \
        (k + 2) * np.finfo(np.float32).eps


dims = st.integers(1, 70)


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(st.integers(1, 3), max_size=2), m=st.integers(1, 300), k=dims,
       n=st.integers(1, 450), seed=st.integers(0, 2**16))
def test_float32_products_are_close_to_the_float64_definition(batch, m, k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((*batch, m, k)).astype(np.float32)
    b = rng.standard_normal((k, n) if seed % 2 else (*batch, k, n)).astype(np.float32)
    fast, exact = _in32(accumulate.matmul, a, b), accumulate.matmul(a, b)
    assert fast.dtype == exact.dtype == np.float32 and fast.shape == exact.shape
    assert np.all(np.abs(fast.astype(np.float64) - exact) <= _bound(a, b))


@pytest.mark.parametrize("shapes", [((3, 700, 96), (96, 800)), ((700, 96), (96, 80)),
                                    ((2, 3, 300, 40), (2, 3, 40, 500)),
                                    ((1, 40, 90), (2, 1, 90, 77)), ((1, 900), (900, 1000)),
                                    ((300, 1500), (1500, 1000))])
def test_float32_products_do_not_depend_on_the_thread_count(monkeypatch, shapes):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shapes[0]).astype(np.float32)
    b = rng.standard_normal(shapes[1]).astype(np.float32)
    got = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        got.append(_in32(accumulate.matmul, a, b))
    assert all(np.array_equal(g, got[0]) for g in got)
    assert not np.array_equal(got[0], accumulate.matmul(a, b))  # float32 sums, not float64


@settings(max_examples=200, deadline=None)
@given(m=st.integers(1, 3000), n=st.integers(1, 4000), k=st.integers(1, 60000))
def test_a_product_is_cut_into_few_even_column_first_blocks_that_cover_it(m, n, k):
    tiles = products32.tiles(m, n, k)
    cover = np.zeros((m, n), np.int8)
    for r0, r1, c0, c1 in tiles:
        assert 0 <= r0 < r1 <= m and 0 <= c0 < c1 <= n
        assert c0 % products32.TILE_MIN == 0
        cover[r0:r1, c0:c1] += 1
    assert (cover == 1).all()  # every element in exactly one block
    work = m * n * k
    if work < products32.SPLIT_WORK:
        assert len(tiles) == 1
    else:  # each block at most about TILE_WORK, and no fewer than two unless too narrow
        assert len(tiles) >= 2 or (m < 2 * products32.TILE_MIN and n < 2 * products32.TILE_MIN)
        biggest = max((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in tiles) * k
        assert biggest <= max(products32.TILE_WORK, work // 2) + products32.TILE_MIN * m * k
    assert products32.tiles(m, n, k) == tiles  # the shapes alone decide


def test_a_convolution_in_float32_mode_on_any_thread_count(monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((40, 16, 3, 3)).astype(np.float32)
    got = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        got.append(_in32(conv_nd, x, w, None, [1, 1], [1, 1, 1, 1], [1, 1]))
    exact = conv_nd(x, w, None, [1, 1], [1, 1, 1, 1], [1, 1])
    assert all(np.array_equal(g, got[0]) for g in got)
    assert np.allclose(got[0], exact, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("narrow", [ml_dtypes.bfloat16, np.float16])
def test_narrow_floats_accumulate_in_float32_and_round_once(narrow):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((5, 37)).astype(narrow)
    b = rng.standard_normal((37, 11)).astype(narrow)
    got = _in32(accumulate.matmul, a, b)
    assert got.dtype == narrow
    want = np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(narrow)
    assert np.array_equal(got.astype(np.float32), want.astype(np.float32))


def test_float64_operands_keep_float64_products():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((30, 40)), rng.standard_normal((40, 20))
    assert np.array_equal(_in32(accumulate.matmul, a, b), np.matmul(a, b))
    assert _in32(accumulate.einsum, "ij,jk->ik", a, b).dtype == np.float64


def _bert(batch=2):
    from npuc import zoo

    return npuc.load_model(zoo.build("bert-tiny")), zoo.sample_inputs("bert-tiny", batch=batch)


def test_a_model_in_float32_mode_is_the_same_on_any_thread_count(monkeypatch):
    graph, feeds = _bert()
    runs = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        runs.append(execute(graph, feeds, products="float32"))
    exact = execute(graph, feeds)
    for name, y in runs[0].items():
        assert all(np.array_equal(r[name], y) for r in runs)
        assert np.allclose(y, exact[name], rtol=1e-4, atol=1e-4)


def test_the_default_is_the_float64_definition_and_a_bad_mode_is_refused():
    graph, feeds = _bert(1)
    default = execute(graph, feeds)
    with threads.product_precision("float32"):  # an enclosing mode does not leak in
        inner = execute(graph, feeds)
    assert all(np.array_equal(default[k], inner[k]) for k in default)
    assert threads.products() == "float64"
    with pytest.raises(InputError, match="products must be one of float64, float32"):
        execute(graph, feeds, products="float16")


@pytest.mark.parametrize("products", ["float32", "float64"])
@pytest.mark.parametrize("shapes", [((3, 0), (0, 4)), ((2, 3, 0), (0, 5))])
def test_a_product_summing_no_terms_is_zero(products, shapes):
    a, b = (np.ones(s, np.float32) for s in shapes)
    out = np.full(a.shape[:-1] + b.shape[-1:], np.nan, np.float32)
    with threads.product_precision(products):
        got = accumulate.matmul(a, b, out=out)
    assert got is out and np.array_equal(out, np.zeros_like(out))

"""npuc::Attention and Softmax in a float32-products run on drawn shapes: the fused
attention gives its parts' bits on any thread count and stays close to the float64
definition; Softmax handles rows with infinities and NaNs as the definition does."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npuc.compiler.ops  # noqa: F401  (npuc's kernels)
from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import KernelContext, get_kernel


def _run(op, inputs, attrs, domain="npuc"):
    with threads.product_precision("float32"):
        return get_kernel(op, domain, 20)(inputs, attrs, KernelContext(opset=20))[0]


def _parts(q, kt, v, mask, attrs):
    s = _run("MatMul", [q, kt], {}, "") * np.float32(attrs["scale"])
    if mask is not None:
        s = np.where(mask, s, np.float32(attrs["mask_fill"])) if mask.dtype == bool \
            else s + mask
    p = _run("Softmax", [s], {"axis": -1}, "")
    if attrs.get("nan_to_zero"):
        p = np.where(np.isnan(p), np.float32(0), p)
    return _run("MatMul", [p, v], {}, "")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # set each time
@given(b=st.integers(1, 2), h=st.integers(1, 7), m=st.integers(1, 300),
       n=st.integers(1, 300), d=st.integers(1, 40), kind=st.sampled_from(["none", "add", "select"]),
       seed=st.integers(0, 2**16))
def test_attention_is_its_parts_and_close_to_the_exact_one(monkeypatch, b, h, m, n, d, kind,
                                                           seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((b, h, m, d)).astype(np.float32)
    kt = rng.standard_normal((b, h, n, d)).astype(np.float32).transpose(0, 1, 3, 2)  # a view
    v = rng.standard_normal((b, h, n, d)).astype(np.float32)
    attrs, mask = {"scale": float(rng.uniform(0.05, 1.0)), "mask_fill": 0.0}, None
    if kind == "add":
        mask = np.where(rng.random((b, 1, 1, n)) < 0.3, -1e4, 0).astype(np.float32)
        # one key open per image: a row whose every score is shifted by -1e4 keeps only
        # float32's 1e-3 of them (ulp(1e4)), in onnxruntime too, and is no longer close
        # to the float64 definition
        mask[..., 0] = 0
    elif kind == "select":
        mask = rng.random((1, 1, m, n)) < 0.7
        mask[..., 0, :] = False  # a row masked out entirely: NaN, then zeros
        attrs.update(mask_mode="select", mask_fill=float("-inf"), nan_to_zero=1)
    inputs = [q, kt, v] + ([mask] if mask is not None else [])
    got = []
    for count in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", count)
        got.append(_run("Attention", inputs, attrs))
    assert got[0].shape == (b, h, m, d) and got[0].dtype == np.float32
    assert all(np.array_equal(g, got[0]) for g in got)
    assert np.array_equal(got[0], _parts(q, kt, v, mask, attrs))
    exact = get_kernel("Attention", "npuc")(inputs, attrs, KernelContext())[0]  # float64
    np.testing.assert_allclose(got[0], exact, rtol=1e-4, atol=2e-5)
    if kind == "select":
        assert not got[0][..., 0, :].any()


special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 3.5, -88.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(special, st.floats(-50, 50, width=32)), min_size=1, max_size=70))
def test_softmax_rows_with_infinities_and_nans_follow_the_definition(values):
    x = np.array(values, np.float32)[None]
    got = _run("Softmax", [x], {"axis": -1}, "")
    with np.errstate(all="ignore"):
        e = np.exp((x - x.max(-1, keepdims=True)).astype(np.float64))  # the float32 difference
        exact = e / e.sum(-1, keepdims=True)
    assert np.array_equal(np.isnan(got), np.isnan(exact))
    ok = ~np.isnan(exact)
    assert np.all(np.abs(got[ok] - exact[ok]) <= 4 * np.finfo(np.float32).eps * exact[ok] + 1e-45)


def test_attention_whose_products_are_cut_in_columns_runs_its_parts(monkeypatch):
    # one long head: the scores' product is cut along its columns, which a block of
    # rows cannot follow; the parts run one after the other, with the same bits
    rng = np.random.default_rng(11)
    q, kt = rng.standard_normal((1, 700, 16)), rng.standard_normal((1, 16, 700))
    v = rng.standard_normal((1, 700, 8))
    q, kt, v = (a.astype(np.float32) for a in (q, kt, v))
    attrs = {"scale": 0.25, "mask_fill": 0.0}
    got = []
    for count in ("1", "2"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", count)
        got.append(_run("Attention", [q, kt, v], attrs))
    assert np.array_equal(got[0], got[1])
    assert np.array_equal(got[0], _parts(q, kt, v, None, attrs))

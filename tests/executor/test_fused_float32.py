"""npuc's fused operators in a float32-products run compute, element by element, what
their parts compute in that run: FusedMatMul and FusedGemm with their bias and GELU in
one pass, npuc::Attention in blocks of query rows."""

from __future__ import annotations

import numpy as np
import pytest

import npuc.compiler.ops  # noqa: F401  (npuc's kernels)
from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import KernelContext, get_kernel


def _run(op, inputs, attrs, domain="npuc"):
    with threads.product_precision("float32"):
        return get_kernel(op, domain, 20)(inputs, attrs, KernelContext(opset=20))[0]


@pytest.mark.parametrize("act", ["", "Gelu", "GeluTanh"])
@pytest.mark.parametrize("shape", [(3, 70, 40), (300, 40), (2, 1, 500, 24)])
def test_fused_matmul_is_matmul_add_and_activation(act, shape):
    rng = np.random.default_rng(len(shape))
    a = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal((shape[-1], 450)).astype(np.float32)
    bias = rng.standard_normal(450).astype(np.float32)
    got = _run("FusedMatMul", [a, b, bias], {"activation": act})
    want = _run("Add", [_run("MatMul", [a, b], {}, ""), bias], {}, "")
    if act:
        want = _run("Gelu", [want], {"approximate": "tanh" if act == "GeluTanh" else "none"}, "")
    assert got.dtype == np.float32 and np.array_equal(got, want)


@pytest.mark.parametrize("trans", [(0, 0), (1, 0), (0, 1)])
def test_fused_gemm_with_a_row_bias_is_gemm_then_gelu(trans):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((64, 30) if not trans[0] else (30, 64)).astype(np.float32)
    b = rng.standard_normal((30, 90) if not trans[1] else (90, 30)).astype(np.float32)
    c = rng.standard_normal((1, 90)).astype(np.float32)
    attrs = {"transA": trans[0], "transB": trans[1]}
    got = _run("FusedGemm", [a, b, c], {**attrs, "activation": "Gelu"})
    want = _run("Gelu", [_run("Gemm", [a, b, c], attrs, "")], {}, "")
    assert np.array_equal(got, want)
    # a whole-matrix C or a scaled product keep the general path: the same numbers
    full = rng.standard_normal((64, 90)).astype(np.float32)
    got = _run("FusedGemm", [a, b, full], {**attrs, "alpha": 0.5, "activation": "Gelu"})
    want = _run("Gelu", [_run("Gemm", [a, b, full], {**attrs, "alpha": 0.5}, "")], {}, "")
    assert np.array_equal(got, want)


def _attention_parts(q, kt, v, mask, attrs):
    s = _run("MatMul", [q, kt], {}, "")
    s = s * np.float32(attrs.get("scale", 1.0))
    if mask is not None:
        if attrs.get("mask_mode") == "select":
            s = np.where(mask, s, np.float32(attrs["mask_fill"]))
        else:
            s = s + mask
    p = _run("Softmax", [s], {"axis": -1}, "")
    if attrs.get("nan_to_zero"):
        p = np.where(np.isnan(p), np.float32(0), p)
    return _run("MatMul", [p, v], {}, "")


@pytest.mark.parametrize("case", ["plain", "additive", "causal"])
@pytest.mark.parametrize("threads_", ["1", "2"])
def test_attention_is_its_parts_on_any_thread_count(monkeypatch, case, threads_):
    monkeypatch.setenv("NPUC_BLAS_THREADS", threads_)
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 3, 200, 16)).astype(np.float32)
    kt = rng.standard_normal((2, 3, 16, 200)).astype(np.float32)
    v = rng.standard_normal((2, 3, 200, 8)).astype(np.float32)
    mask, attrs = None, {"scale": 0.25}
    if case == "additive":
        mask = np.where(rng.random((2, 1, 1, 200)) < 0.3, -1e4, 0).astype(np.float32)
    if case == "causal":
        mask = np.tril(np.ones((200, 200), bool))[None, None]
        mask[..., 0, :] = False  # a row masked out entirely
        attrs = {"mask_mode": "select", "mask_fill": float("-inf"), "nan_to_zero": 1}
    inputs = [q, kt, v] + ([mask] if mask is not None else [])
    got = _run("Attention", inputs, attrs)
    assert got.shape == (2, 3, 200, 8) and got.dtype == np.float32
    assert np.array_equal(got, _attention_parts(q, kt, v, mask, attrs))
    exact = get_kernel("Attention", "npuc")(inputs, attrs, KernelContext())[0]  # float64
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-5)


def test_long_attention_runs_in_blocks_of_rows_close_to_the_exact_one():
    rng = np.random.default_rng(5)
    q = rng.standard_normal((1, 600, 8)).astype(np.float32)
    kt = rng.standard_normal((1, 8, 600)).astype(np.float32)
    v = rng.standard_normal((1, 600, 4)).astype(np.float32)
    got = _run("Attention", [q, kt, v], {"scale": 0.3})
    exact = get_kernel("Attention", "npuc")([q, kt, v], {"scale": 0.3}, KernelContext())[0]
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bias_shape", [(90,), (1, 90), (64, 90), (64, 1)])
def test_gemm_adds_its_bias_as_the_separate_addition_would(bias_shape):
    rng = np.random.default_rng(9)
    a = rng.standard_normal((64, 30)).astype(np.float32)
    b = rng.standard_normal((90, 30)).astype(np.float32)
    c = rng.standard_normal(bias_shape).astype(np.float32)
    got = _run("Gemm", [a, b, c], {"transB": 1}, "")
    want = _run("MatMul", [a, b.T], {}, "") + c
    assert got.dtype == np.float32 and np.array_equal(got, want)

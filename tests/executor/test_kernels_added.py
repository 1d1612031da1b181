"""Small examples for the fast paths and the newer kernels (each against a plain numpy
formula), and the BLAS thread limit around a run."""

from __future__ import annotations

import math

import numpy as np

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import KernelContext, get_kernel


def run(op, inputs, attrs=None, domain="", opset=21, num_outputs=1):
    fn = get_kernel(op, domain)
    return fn(inputs, attrs or {}, KernelContext(opset=opset, num_outputs=num_outputs))


def test_erf_float32_matches_libm():
    x = np.linspace(-6, 6, 10001, dtype=np.float32)
    want = np.array([math.erf(v) for v in x.astype(np.float64)])
    got = run("Erf", [x])[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert np.isnan(run("Erf", [np.array([np.nan], np.float32)])[0][0])


def test_batch_norm_is_scale_and_shift():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    scale, bias, mean = (rng.standard_normal(3).astype(np.float32) for _ in range(3))
    var = rng.random(3).astype(np.float32) + 0.5
    got = run("BatchNormalization", [x, scale, bias, mean, var], opset=15)[0]
    c = (1, 3, 1, 1)
    want = (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + 1e-5) * scale.reshape(c) \
        + bias.reshape(c)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_layer_norm_outputs_mean_and_inverse_std():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32) * 3 + 1
    scale, bias = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    y, mean, inv = run("LayerNormalization", [x, scale, bias], num_outputs=3)
    m = x.mean(-1, keepdims=True)
    s = 1 / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, (x - m) * s * scale + bias, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mean, m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inv, s, rtol=1e-5)


def test_cumprod_exclusive_reverse():
    x = np.array([1, 2, 3, 4], np.int32)
    assert run("CumProd", [x, np.array(0)])[0].tolist() == [1, 2, 6, 24]
    assert run("CumProd", [x, np.array(0)], {"exclusive": 1})[0].tolist() == [1, 1, 2, 6]
    assert run("CumProd", [x, np.array(0)], {"reverse": 1})[0].tolist() == [24, 24, 12, 4]


def test_binarizer_and_feature_extractor():
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    assert run("Binarizer", [x], {"threshold": 0.4}, "ai.onnx.ml")[0].tolist() == [[0, 1, 1]]
    got = run("ArrayFeatureExtractor", [x, np.array([2, 0])], domain="ai.onnx.ml")[0]
    assert got.tolist() == [[2.0, -1.0]]


def test_momentum_first_step_takes_whole_gradient():
    x, g, v = np.array([1.0]), np.array([0.5]), np.array([0.0])
    attrs = {"alpha": 0.9, "beta": 0.1, "norm_coefficient": 0.0, "mode": "standard"}
    x_new, v_new = run("Momentum", [np.array(0.1), np.array(0), x, g, v], attrs,
                       "ai.onnx.preview.training", num_outputs=2)
    assert v_new.tolist() == [0.5] and np.allclose(x_new, [0.95])


def test_bfloat16_matmul_rounds_once():
    import ml_dtypes

    a = np.array([[1.0, 2.0]], ml_dtypes.bfloat16)
    b = np.array([[3.0], [0.5]], ml_dtypes.bfloat16)
    y = run("MatMul", [a, b])[0]
    assert y.dtype == a.dtype and float(y[0, 0]) == 4.0


def test_blas_limit_is_restored_after_a_run(monkeypatch):
    threadpoolctl = __import__("pytest").importorskip("threadpoolctl")
    controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
    before = [lib.num_threads for lib in controller.lib_controllers]
    with threads.blas_limit():
        inside = [lib.get_num_threads() for lib in controller.lib_controllers]
        with threads.blas_limit():  # nested runs leave the limit alone
            pass
    after = [lib.get_num_threads() for lib in controller.lib_controllers]
    assert all(n == threads.blas_threads() for n in inside) or not inside
    assert after == before


def test_blas_libraries_are_found_again_only_after_an_import(monkeypatch):
    import sys
    import types

    import threadpoolctl  # a dependency of npuc

    scans = []

    class Counting(threadpoolctl.ThreadpoolController):
        def __init__(self):
            scans.append(1)
            super().__init__()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", Counting)
    monkeypatch.setenv("NPUC_BLAS_THREADS", "1")  # npuc limits BLAS (0 would leave it)
    threads.configure()
    assert threads._blas is not None
    with threads.blas_limit():
        pass
    first = len(scans)
    for _ in range(3):
        with threads.blas_limit():
            pass
    assert len(scans) == first  # nothing imported: the libraries found before serve
    monkeypatch.setitem(sys.modules, "npuc_test_new_module", types.ModuleType("m"))
    with threads.blas_limit():
        pass
    assert len(scans) == first + 1  # an import may have brought a BLAS library

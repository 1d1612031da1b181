"""Products of a few rows by a stored transpose (a classifier's Gemm): close to the
float64 definition, the same bits on any thread count and in any block of columns, the
epilogue the separate float32 operations, and a Gemm node through the executor close to
onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.executor import threads
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.executor.kernels import accumulate, products32, skinny32
from npuc.compiler.executor.kernels.epilogue import Epilogue


def _product(a, w, size, epilogue=None, direct=False):
    """``a @ w.T`` in a float32-products run on a pool of ``size`` threads (``direct``:
    by this module whatever the shapes)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NPUC_BLAS_THREADS", str(size))
        with threads.blas_limit(), threads.product_precision("float32"):
            if not direct:
                return accumulate.matmul(a, w.T, epilogue=epilogue)
            y = np.full((a.shape[0], w.shape[0]), np.nan, np.float32)
            skinny32.matmul(a, w.T, y, epilogue)
            return y


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, products32.SKINNY_ROWS), k=st.integers(1, 700), n=st.integers(1, 900),
       seed=st.integers(0, 2**31))
def test_few_rows_by_a_transpose_are_close_and_the_same_on_any_thread_count(m, k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    y = _product(a, w, 1, direct=True)
    exact = a.astype(np.float64) @ w.T.astype(np.float64)
    assert np.allclose(y, exact, rtol=0, atol=2e-6 * k)
    for t in (2, 3):
        assert _product(a, w, t, direct=True).tobytes() == y.tobytes()
    if products32.skinny(a, w.T, y):  # what a float32-products run computes
        assert _product(a, w, 2).tobytes() == y.tobytes()
    # any block of columns computed on its own has the same bits
    j0, j1 = sorted(rng.integers(0, n + 1, 2))
    part = np.full((m, n), np.nan, np.float32)
    skinny32._dots(a, w, part, j0, j1)
    assert part[:, j0:j1].tobytes() == y[:, j0:j1].tobytes()


def test_the_product_is_taken_only_where_it_applies():
    a = np.ones((2, 512), np.float32)
    w = np.ones((1000, 512), np.float32)
    y = np.empty((2, 1000), np.float32)
    assert products32.skinny(a, w.T, y)
    assert not products32.skinny(np.ones((5, 512), np.float32), w.T, np.empty((5, 1000),
                                                                            np.float32))
    assert not products32.skinny(a, np.ascontiguousarray(w.T), y)  # not a stored transpose
    assert not products32.skinny(a, w[:8].T, y[:, :8])  # too small to gain
    assert not products32.skinny(a.astype(np.float64), w.T.astype(np.float64),
                                y.astype(np.float64))


def test_the_bias_and_clamp_are_the_separate_float32_operations():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 640)).astype(np.float32)
    w = rng.standard_normal((700, 640)).astype(np.float32)
    bias = rng.standard_normal(700).astype(np.float32)
    fused = _product(a, w, 2, Epilogue(bias=bias, activation="Relu"))
    plain = _product(a, w, 2)
    assert fused.tobytes() == np.maximum(plain + bias, np.float32(0)).tobytes()


def test_a_classifier_gemm_matches_onnxruntime(tmp_path):
    rng = np.random.default_rng(7)
    w = rng.standard_normal((1000, 1280)).astype(np.float32) * 0.05
    b = rng.standard_normal(1000).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
    graph = helper.make_graph([node], "classifier",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 1280])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1000])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "classifier.onnx"
    onnx.save(model, path)
    x = rng.standard_normal((2, 1280)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    got = execute(npuc.load_model(str(path)), {"x": x}, products="float32")["y"]
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5)

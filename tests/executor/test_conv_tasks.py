"""1x1 convolutions whose blocks run in one Numba call per thread: the bits of the same
blocks run through the interpreter, on any thread count, with a bias, a residual and a
clamp, grouped or not, by register tiles or by numpy's BLAS."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import conv_tasks, numpy_blas
from npuc.compiler.executor.kernels.conv import conv_nd
from npuc.compiler.executor.kernels.epilogue import Epilogue


def _conv(x, w, b, group, epilogue, size, numba: bool):
    calls = []
    real = conv_tasks.pointwise

    def spy(*args):
        calls.append(real(*args))
        return calls[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NPUC_BLAS_THREADS", str(size))
        mp.setattr(conv_tasks, "pointwise", spy if numba else lambda *a: False)
        with threads.blas_limit(), threads.product_precision("float32"):
            y = conv_nd(x, w, b, group=group, activation=epilogue)
    return y, calls


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), k=st.sampled_from([4, 24, 40, 130]), mg=st.integers(1, 70),
       group=st.sampled_from([1, 2]), hw=st.sampled_from([(1, 1), (7, 7), (14, 15), (40, 40)]),
       bias=st.booleans(), residual=st.booleans(),
       act=st.sampled_from(["", "Relu", "Clip"]), seed=st.integers(0, 2**31))
def test_the_blocks_without_the_interpreter_have_the_interpreters_bits(n, k, mg, group, hw,
                                                                      bias, residual, act,
                                                                      seed):
    rng = np.random.default_rng(seed)
    c, m = k * group, mg * group
    x = rng.standard_normal((n, c, *hw)).astype(np.float32)
    w = rng.standard_normal((m, k, 1, 1)).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32) if bias else None
    res = rng.standard_normal((n, m, *hw)).astype(np.float32) if residual else None
    params = (np.float32(-0.5), np.float32(1.5)) if act == "Clip" else ()
    epilogue = Epilogue(None, act, params, residual=res) if act or residual else None
    want, _ = _conv(x, w, b, group, epilogue, 2, numba=False)
    for size in (1, 2, 3):
        got, calls = _conv(x, w, b, group, epilogue, size, numba=True)
        assert len(calls) == 1 and got.tobytes() == want.tobytes()


def test_a_typical_1x1_convolution_takes_the_numba_blocks():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 96, 14, 14)).astype(np.float32)
    for k in (16, 96):  # register tiles, then numpy's BLAS
        w = rng.standard_normal((64, k, 1, 1)).astype(np.float32)
        b = rng.standard_normal(64).astype(np.float32)
        got, calls = _conv(np.ascontiguousarray(x[:, :k]), w, b, 1, Epilogue(None, "Relu", ()), 2, numba=True)
        assert calls == [True] or (k > 24 and not numpy_blas.address()[0])
        want, _ = _conv(np.ascontiguousarray(x[:, :k]), w, b, 1, Epilogue(None, "Relu", ()), 2, numba=False)
        assert got.tobytes() == want.tobytes()


def test_an_epilogue_it_cannot_apply_goes_through_the_interpreter():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 40, 9, 9)).astype(np.float32)
    w = rng.standard_normal((16, 40, 1, 1)).astype(np.float32)
    epilogue = Epilogue(None, "Sigmoid", ())  # (its ONNX kernel, after the product)
    got, calls = _conv(x, w, None, 1, epilogue, 2, numba=True)
    assert calls == [False]
    plain, _ = _conv(x, w, None, 1, None, 2, numba=True)
    assert np.allclose(got, 1 / (1 + np.exp(-plain.astype(np.float64))), atol=1e-6)


@pytest.mark.parametrize("shape", [(0, 40, 5, 5), (2, 40, 0, 5), (2, 0, 5, 5)])
def test_empty_images_and_channels(shape):
    x = np.zeros(shape, np.float32)
    w = np.ones((8, shape[1], 1, 1), np.float32)
    b = np.arange(8, dtype=np.float32)
    got, _ = _conv(x, w, b, 1, Epilogue(None, "Relu", ()), 2, numba=True)
    assert got.shape == (shape[0], 8, *shape[2:])
    assert np.array_equal(got, np.broadcast_to(b.reshape(1, 8, 1, 1), got.shape))


@pytest.mark.parametrize("products", ["float32", "float64"])
@pytest.mark.parametrize("xs, ws, group", [((0, 8, 5, 5), (8, 8, 3, 3), 1),
                                           ((0, 8, 5, 5), (8, 1, 3, 3), 8),
                                           ((2, 8, 0, 5), (8, 8, 3, 3), 1),
                                           ((2, 8, 5, 5), (0, 8, 1, 1), 1),
                                           ((2, 0, 5, 5), (4, 0, 3, 3), 1),
                                           ((2, 0, 5, 5), (4, 0, 1, 1), 1)])
def test_convolutions_of_empty_tensors(products, xs, ws, group):
    """No image, no position, no output channel: an empty result; no input channel: the
    bias alone (a sum of no terms)."""
    x = np.zeros(xs, np.float32)
    w = np.ones(ws, np.float32)
    b = np.arange(ws[0], dtype=np.float32) + 1
    with threads.product_precision(products):
        y = conv_nd(x, w, b, group=group, pads=[1] * 4 if ws[2] == 3 else None)
    assert y.shape == (xs[0], ws[0], *xs[2:])
    assert np.array_equal(y, np.broadcast_to(b.reshape(1, -1, 1, 1), y.shape))

"""Float32-products convolutions in blocks of output positions: the gather is the
convolution (any geometry), the bits do not depend on the thread count, and a FusedConv
gives the numbers of its Conv and activation kernels run one after the other."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import KernelContext, conv_columns, get_kernel
from npuc.compiler.executor.kernels.conv import conv_nd
from npuc.compiler.ops import fused  # noqa: F401  (registers FusedConv)


def _small_blocks(mp):
    """Blocks of a few columns and rows, so that small images span several."""
    mp.setattr(conv_columns, "COLUMN_BYTES", 1 << 10)
    mp.setattr(conv_columns, "MIN_COLUMNS", 16)
    mp.setattr(conv_columns, "MAX_ROWS", 8)
    mp.setattr(conv_columns, "MIN_ROWS", 2)
    mp.setattr(conv_columns, "MIN_TASK", 1)


@pytest.fixture
def small_blocks(monkeypatch):
    _small_blocks(monkeypatch)


@settings(max_examples=30, deadline=None)
@given(c=st.integers(1, 6), m=st.integers(1, 12), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       s=st.tuples(st.integers(1, 2), st.integers(1, 2)), d=st.integers(1, 2),
       p=st.integers(0, 2), h=st.integers(3, 11), w=st.integers(3, 23), seed=st.integers(0, 99))
def test_blocked_float32_convolutions_are_the_convolution(c, m, k, s, d, p, h, w, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    kernel = rng.standard_normal((m, c, *k)).astype(np.float32)
    bias = rng.standard_normal(m).astype(np.float32)
    if (h + 2 * p - (k[0] - 1) * d - 1) < 0 or (w + 2 * p - (k[1] - 1) * d - 1) < 0:
        return
    geometry = (list(s), [p, p, p, p], [d, d])
    exact = conv_nd(x, kernel, bias, *geometry)
    with threads.product_precision("float32"), pytest.MonkeyPatch.context() as mp:
        _small_blocks(mp)
        fast = conv_nd(x, kernel, bias, *geometry)
    assert np.allclose(fast, exact, rtol=1e-5, atol=1e-5 * np.abs(exact).max())


@pytest.mark.parametrize("group, kshape, stride, pad",
                         [(1, (3, 3), 1, 1), (1, (1, 1), 1, 0), (2, (3, 3), 2, 1),
                          (1, (1, 1), 2, 0), (12, (3, 3), 2, 1)])
def test_float32_convolutions_do_not_depend_on_the_thread_count(monkeypatch, small_blocks,
                                                                 group, kshape, stride, pad):
    rng = np.random.default_rng(group)
    x = rng.standard_normal((2, 12, 13, 17)).astype(np.float32)
    w = rng.standard_normal((24, 12 // group, *kshape)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    got = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        with threads.product_precision("float32"):
            got.append(conv_nd(x, w, b, [stride] * 2, [pad] * 4, [1, 1], group))
    assert all(np.array_equal(g, got[0]) for g in got)
    exact = conv_nd(x, w, b, [stride] * 2, [pad] * 4, [1, 1], group)
    assert np.allclose(got[0], exact, rtol=1e-5, atol=1e-5 * np.abs(exact).max())


ACTIVATIONS = [("Relu", []), ("Clip", [0.0, 6.0]), ("Clip", [1.0, -1.0]), ("LeakyRelu", [0.1]),
               ("HardSwish", []), ("Sigmoid", [])]


@pytest.mark.parametrize("mode", ["float32", "float64"])
@pytest.mark.parametrize("group, kshape, stride", [(1, (3, 3), 1), (1, (1, 1), 1), (8, (3, 3), 2)])
def test_a_fused_convolution_is_its_conv_then_its_activation(small_blocks, mode, group, kshape,
                                                             stride):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 8, 9, 11)).astype(np.float32)
    w = rng.standard_normal((16, 8 // group, *kshape)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    pad = kshape[0] // 2
    attrs = {"group": group, "strides": [stride] * 2, "pads": [pad] * 4}
    ctx = KernelContext()
    for act, params in ACTIVATIONS:
        with threads.product_precision(mode):
            got = get_kernel("FusedConv", "npuc")(
                [x, w, b], {**attrs, "activation": act, "activation_params": params}, ctx)[0]
            y = get_kernel("Conv")([x, w, b], attrs, ctx)[0]
            inputs = [y] + [np.float32(v) for v in params] if act == "Clip" else [y]
            extra = {"alpha": params[0]} if act == "LeakyRelu" else {}
            want = get_kernel(act)(inputs, extra, ctx)[0]
        assert np.array_equal(got, want), (act, params)


@pytest.mark.parametrize("kshape, stride, pad", [((1, 1), 2, 0), ((3, 3), 1, 1), ((1, 1), 1, 0)])
def test_whole_image_blocks_are_the_convolution(kshape, stride, pad):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 6, 15, 13)).astype(np.float32)[:, :, 1:, :]  # a strided view
    w = rng.standard_normal((5, 6, *kshape)).astype(np.float32)
    geometry = ([stride] * 2, [pad] * 4, [1, 1])
    exact = conv_nd(x, w, None, *geometry)
    with threads.product_precision("float32"):
        fast = conv_nd(x, w, None, *geometry)
    assert np.allclose(fast, exact, rtol=1e-5, atol=1e-5 * np.abs(exact).max())

"""The quantized operators against plain integer references."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler import ops  # noqa: F401
from npuc.compiler.executor.kernels import KernelContext, get_kernel
from npuc.compiler.quantize.fixedpoint import quantize_multipliers
from tests.quantize.test_fixedpoint import mbqm_ref


def conv_ref(x, w, b, xz, stride, pad):
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    xp = np.full((n, c, h + 2 * pad, wd + 2 * pad), xz, np.int64)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, m, oh, ow), np.int64)
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw] - xz
            out[:, :, i, j] = np.einsum("nchw,mchw->nm", win, w.astype(np.int64))
    return out + b.reshape(1, -1, 1, 1)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 2), st.integers(0, 1))
def test_qconv_is_exact(seed, stride, pad):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (2, 3, 6, 5)).astype(np.int8)
    w = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    b = rng.integers(-5000, 5000, 4).astype(np.int32)
    xz = int(rng.integers(-20, 20))
    m0, sh = quantize_multipliers(rng.uniform(1e-4, 1e-2, 4))
    attrs = {"strides": [stride] * 2, "pads": [pad] * 4, "x_zero_point": xz,
             "y_scale": 1.0, "y_zero_point": 7, "qmin": -128, "qmax": 127}
    got = get_kernel("QConv", "npuc")([x, w, b, m0, sh], attrs, KernelContext())[0]
    acc = conv_ref(x, w, b, xz, stride, pad)
    want = np.vectorize(lambda a, c: max(-128, min(127, mbqm_ref(int(a), int(m0[c]),
                                                                int(sh[c])) + 7)))(
        acc, np.arange(4).reshape(1, -1, 1, 1))
    assert np.array_equal(got, want)


def test_qmatmul_is_exact():
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, (3, 5, 16)).astype(np.int8)
    b = rng.integers(-127, 128, (16, 4)).astype(np.int8)
    m0, sh = quantize_multipliers([0.003, 0.002, 0.001, 0.004])
    attrs = {"a_zero_point": -3, "y_scale": 1.0, "y_zero_point": 0}
    got = get_kernel("QMatMul", "npuc")([a, b, None, m0, sh], attrs, KernelContext())[0]
    acc = (a.astype(np.int64) + 3) @ b.astype(np.int64)
    for idx in np.ndindex(acc.shape):
        c = idx[-1]
        assert got[idx] == max(-128, min(127, mbqm_ref(int(acc[idx]), int(m0[c]), int(sh[c]))))


def test_lut_looks_up():
    table = np.arange(-128, 128)[::-1].astype(np.int8)
    x = np.array([-128, 0, 127], np.int8)
    assert get_kernel("Lut", "npuc")([x, table], {"y_scale": 1.0}, KernelContext())[0].tolist() \
        == [127, -1, -128]

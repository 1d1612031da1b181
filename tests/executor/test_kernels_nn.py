"""The neural-network kernels against the ONNX conformance node cases, plus unit tests.

The conformance cases are the examples of the ONNX specification with the outputs of its
reference implementation; `onnx_cases` runs each one-node model through the kernel.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.executor.kernels import KERNELS, KernelContext, load_all
from npuc.ir.errors import UnsupportedError
from tests.executor import onnx_cases as runner

load_all()


NN_OPS = {
    "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MatMul", "MatMulInteger",
    "QLinearMatMul", "Gemm", "Einsum", "AveragePool", "MaxPool", "LpPool",
    "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "MaxUnpool", "MaxRoiPool",
    "RoiAlign", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
    "GroupNormalization", "RMSNormalization", "LpNormalization", "MeanVarianceNormalization",
    "LRN", "Softmax", "LogSoftmax", "Hardmax", "Resize", "Upsample", "GridSample",
    "DeformConv", "Col2Im", "Attention", "RotaryEmbedding", "QuantizeLinear",
    "DequantizeLinear", "DynamicQuantizeLinear", "RNN", "GRU", "LSTM", "TopK", "CumSum",
    "Dropout", "NonMaxSuppression", "DFT", "STFT", "HannWindow", "HammingWindow",
    "BlackmanWindow", "MelWeightMatrix", "Bernoulli", "RandomNormal", "RandomUniform",
    "RandomNormalLike", "RandomUniformLike", "Multinomial",
}

# Reached when this was written (464 single-node cases exist for these operators).
MIN_PASSED = 464


@pytest.fixture(scope="session")
def nn_cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_cases")
    return runner.write_cases(str(root), NN_OPS)


def test_conformance_cases(nn_cases):
    passed, failed = runner.run_dir(os.path.dirname(os.path.dirname(nn_cases[0])))
    print(f"{len(passed)} of {len(nn_cases)} conformance cases pass")
    for name, msg in sorted(failed.items()):
        print(f"  FAIL {name}: {msg}")
    assert len(passed) >= MIN_PASSED, sorted(failed)


def run(op, inputs, opset=21, num_outputs=1, **attrs):
    return KERNELS[("", op)](inputs, attrs, KernelContext(opset=opset, num_outputs=num_outputs))


def test_conv_on_strided_view_equals_contiguous_copy():
    rng = np.random.default_rng(1)
    big = rng.standard_normal((1, 8, 20, 24)).astype(np.float32)
    view = big[:, 1:7, 2:18:2, 3:21]  # a tile of a larger tensor, not contiguous
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    got = run("Conv", [view, w], pads=[1, 1, 1, 1], strides=[1, 2])[0]
    want = run("Conv", [np.ascontiguousarray(view), w], pads=[1, 1, 1, 1], strides=[1, 2])[0]
    np.testing.assert_array_equal(got, want)


def test_conv_writes_into_given_buffer():
    from npuc.compiler.executor.kernels.conv import conv_nd

    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    out = np.empty((1, 5, 9, 9), dtype=np.float32)
    res = conv_nd(x, w, None, [1, 1], [1, 1, 1, 1], [1, 1], 1, out=out)
    assert res is out
    np.testing.assert_allclose(out, run("Conv", [x, w], pads=[1, 1, 1, 1])[0], rtol=1e-6)


@pytest.mark.parametrize("strides", [[1, 1], [2, 1], [1, 2]])
def test_depthwise_matches_per_channel_convolutions(strides):
    from npuc.compiler.executor.kernels.conv import conv_nd

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 11, 13)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    got = conv_nd(x, w, None, strides, [1, 0, 1, 2], [1, 2], group=6)
    # the same convolution as six separate single-channel ones
    want = np.concatenate([conv_nd(x[:, c:c + 1], w[c:c + 1], None, strides, [1, 0, 1, 2], [1, 2])
                           for c in range(6)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.integers(1, 7), st.integers(0, 2**32 - 1),
       st.sampled_from([np.int8, np.uint8]))
def test_matmul_integer_is_exact(m, k, n, seed, dtype):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max + 1, (m, k)).astype(dtype)
    b = rng.integers(info.min, info.max + 1, (k, n)).astype(dtype)
    az = np.array(rng.integers(info.min, info.max + 1), dtype=dtype)
    bz = np.array(rng.integers(info.min, info.max + 1), dtype=dtype)
    got = run("MatMulInteger", [a, b, az, bz])[0]
    want = (a.astype(np.int64) - int(az)) @ (b.astype(np.int64) - int(bz))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def test_conv_integer_is_exact():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (1, 3, 7, 7)).astype(np.uint8)
    w = rng.integers(-128, 128, (2, 3, 3, 3)).astype(np.int8)
    got = run("ConvInteger", [x, w, np.array(100, np.uint8)], pads=[1, 1, 1, 1])[0]
    xi = np.pad(x.astype(np.int64) - 100, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((1, 2, 7, 7), dtype=np.int64)
    for i in range(7):
        for j in range(7):
            want[0, :, i, j] = (w.astype(np.int64) * xi[0, :, i:i + 3, j:j + 3]).sum(axis=(1, 2, 3))
    np.testing.assert_array_equal(got, want)


def test_quantize_rounds_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 300.0], dtype=np.float32)
    got = run("QuantizeLinear", [x, np.float32(1.0), np.int8(0)])[0]
    np.testing.assert_array_equal(got, [0, 2, 2, 0, -2, 127])


def test_hardmax_before_opset_13_flattens():
    x = np.array([[[1, 5], [3, 2]]], dtype=np.float32)  # (1, 2, 2)
    old = run("Hardmax", [x], opset=11, axis=1)[0]  # argmax over the flattened 2x2
    new = run("Hardmax", [x], opset=13, axis=1)[0]  # argmax along axis 1 only
    np.testing.assert_array_equal(old, [[[0, 1], [0, 0]]])
    np.testing.assert_array_equal(new, [[[0, 1], [1, 0]]])


def test_unsupported_attribute_is_one_line_error():
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    with pytest.raises(UnsupportedError, match="Resize mode 'area' is not supported"):
        run("Resize", [x, None, np.array([1, 1, 2, 2], np.float32)], mode="area")


def test_max_pool_on_strided_view_equals_contiguous_copy():
    rng = np.random.default_rng(5)
    view = rng.standard_normal((1, 4, 30, 30)).astype(np.float32)[:, ::2, 1:29, 2:]
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    got = run("MaxPool", [view], **attrs)[0]
    np.testing.assert_array_equal(got, run("MaxPool", [np.ascontiguousarray(view)], **attrs)[0])


def test_global_lp_pool():
    x = np.array([[[[3.0, 4.0]]]], dtype=np.float32)
    np.testing.assert_allclose(run("GlobalLpPool", [x], p=2)[0], [[[[5.0]]]])


def test_max_roi_pool_whole_map_is_a_2x2_max_pool():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    rois = np.array([[0, 0, 0, 3, 3]], dtype=np.float32)
    got = run("MaxRoiPool", [x, rois], pooled_shape=[2, 2])[0]
    np.testing.assert_array_equal(got, [[[[5, 7], [13, 15]]]])


def test_random_operators_use_the_context_generator():
    ctx = KernelContext(opset=21, rng=np.random.default_rng(0))
    normal = KERNELS[("", "RandomNormal")]([], {"shape": [3, 4], "mean": 5.0}, ctx)[0]
    assert normal.shape == (3, 4) and normal.dtype == np.float32
    uniform_like = KERNELS[("", "RandomUniformLike")]
    like = uniform_like([np.zeros((2, 2), np.float64)], {"low": 2.0, "high": 3.0}, ctx)[0]
    assert like.dtype == np.float64 and ((like >= 2) & (like < 3)).all()
    draws = KERNELS[("", "Multinomial")]([np.log(np.array([[0.0, 1.0]], np.float32) + 1e-30)],
                                         {"sample_size": 8}, ctx)[0]
    np.testing.assert_array_equal(draws, np.ones((1, 8), dtype=np.int32))


def test_integer_product_wraps_like_int32_when_sums_overflow():
    from npuc.compiler.executor.kernels.quant import exact_int_matmul

    rng = np.random.default_rng(6)
    a = rng.integers(-(2**15), 2**15, (1, 3, 50)).astype(np.int32)
    b = rng.integers(-(2**15), 2**15, (1, 50, 4)).astype(np.int32)  # sums overflow int32
    out = np.empty((1, 3, 4), dtype=np.int32)
    exact_int_matmul(a, b, out)
    want = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)  # wraps modulo 2^32
    np.testing.assert_array_equal(out, want)


def test_integer_product_in_several_exact_float_blocks():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (5, 1000)).astype(np.uint8)  # K = 1000: four float32 blocks
    b = rng.integers(-128, 128, (1000, 6)).astype(np.int8)
    got = run("MatMulInteger", [a, b, np.array(7, np.uint8), np.array(-3, np.int8)])[0]
    want = (a.astype(np.int64) - 7) @ (b.astype(np.int64) + 3)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 3000), lo=st.integers(-255, 0), hi=st.integers(0, 255),
       batch=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_integer_product_is_the_exact_integer_sum(k, lo, hi, batch, seed):
    """The float32 blocks give the exact integer sums, as int64 arithmetic does, for any
    reduction length and operand range (one block, several, or the float64 fallback)."""
    from npuc.compiler.executor.kernels.quant import integer_product

    rng = np.random.default_rng(seed)
    a = rng.integers(lo, hi + 1, (batch, 3, k))
    b = rng.integers(-128, 128, (k, 5))
    got = integer_product(a.astype(np.float32), b.astype(np.float32))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, (a @ b).astype(np.float64))


def test_qmatmul_matches_integer_arithmetic_with_zero_points():
    from npuc.compiler.ops import quantized_kernels
    from npuc.compiler.quantize.fixedpoint import requantize

    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, (2, 4, 2000)).astype(np.uint8)  # K = 2000: several blocks
    b = rng.integers(-128, 128, (2000, 3)).astype(np.int8)
    bias = rng.integers(-1000, 1000, 3).astype(np.int32)
    acc = (a.astype(np.int64) - 9) @ (b.astype(np.int64) + 2) + bias
    m0, shift = np.array([1 << 30], np.int32), np.array([40], np.int32)
    attrs = {"a_zero_point": 9, "b_zero_point": -2, "qmin": -128, "qmax": 127}
    got = quantized_kernels.qmatmul([a, b, bias, m0, shift], attrs, None)[0]
    want = requantize(np.clip(acc, -2**31, 2**31 - 1).astype(np.int32), m0, shift, 0, -128,
                      127, axis=-1)
    np.testing.assert_array_equal(got, want)

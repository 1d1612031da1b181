"""CNN kernels (2-D pools, global pools, depthwise convolutions) against onnxruntime and
against numpy statements of npuc's sums, over random shapes and attributes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from npuc.compiler.executor.kernels import KERNELS, KernelContext, load_all
from npuc.compiler.executor.kernels.pool import pool_out_shape
from npuc.compiler.executor.kernels.windows import conv_pads

load_all()
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _ort(op, inputs, attrs, n_out=1):
    names = [f"i{k}" for k in range(len(inputs))]
    outs = [helper.make_tensor_value_info("o0", onnx.TensorProto.FLOAT, None)]
    if n_out > 1:
        outs.append(helper.make_tensor_value_info("o1", onnx.TensorProto.INT64, None))
    graph = helper.make_graph(
        [helper.make_node(op, names, [o.name for o in outs], **attrs)], "g",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, a.shape)
         for n, a in zip(names, inputs)], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(names, inputs)))


def _npuc(op, inputs, attrs, n_out=1):
    return KERNELS[("", op)](inputs, attrs, KernelContext(opset=21, num_outputs=n_out))


@st.composite
def pools(draw):
    """(input, attributes) of a 2-D pool that ONNX defines (every window starts inside
    the input or its begin padding)."""
    k = [draw(st.integers(1, 4)) for _ in range(2)]
    s = [draw(st.integers(1, 3)) for _ in range(2)]
    d = [draw(st.integers(1, 2)) for _ in range(2)]
    # up to 40 wide: rows of 16 outputs or more take the row loop, shorter ones the planes
    size = [draw(st.integers((k[i] - 1) * d[i] + 1, draw(st.sampled_from([12, 40]))))
            for i in range(2)]
    attrs = {"kernel_shape": k, "strides": s, "dilations": d}
    auto = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto == "NOTSET":
        attrs["pads"] = [draw(st.integers(0, k[i % 2] - 1)) for i in range(4)]
        attrs["ceil_mode"] = draw(st.integers(0, 1))
    else:  # onnxruntime pads SAME without dilations and refuses a negative total pad
        attrs["auto_pad"] = auto
        attrs["dilations"] = [1, 1]
        attrs["strides"] = [min(s[i], k[i]) for i in range(2)]
    seed = draw(st.integers(0, 2**16))
    x = np.random.default_rng(seed).standard_normal(
        (draw(st.integers(1, 2)), draw(st.integers(1, 5)), *size)).astype(np.float32)
    return x, attrs


def _padded_windows(x, attrs, fill):
    """Every window of ``x`` as (N, C, oh, ow, kh * kw) in the kernel's row-major order,
    positions outside the input holding ``fill``; and the resolved pads."""
    k, s, d = attrs["kernel_shape"], attrs["strides"], attrs["dilations"]
    pads = conv_pads(attrs.get("auto_pad", "NOTSET"), x.shape[2:], k, s, d, attrs.get("pads"),
                     None)
    oh, ow = pool_out_shape(x.shape[2:], k, s, pads, d, attrs.get("ceil_mode", 0),
                            attrs.get("auto_pad", "NOTSET"))
    big = np.full(x.shape[:2] + (oh * s[0] + k[0] * d[0] + pads[0], ow * s[1] + k[1] * d[1] +
                                 pads[1]), fill, x.dtype)
    big[:, :, pads[0]:pads[0] + x.shape[2], pads[1]:pads[1] + x.shape[3]] = x
    taps = [big[:, :, ki * d[0]:ki * d[0] + oh * s[0]:s[0], kj * d[1]:kj * d[1] + ow * s[1]:s[1]]
            for ki in range(k[0]) for kj in range(k[1])]
    return np.stack(taps, axis=-1), pads


@SETTINGS
@given(pools(), st.booleans())
def test_max_pool_equals_onnxruntime(case, with_indices):
    x, attrs = case
    n_out = 2 if with_indices else 1
    got, want = _npuc("MaxPool", [x], attrs, n_out), _ort("MaxPool", [x], attrs, n_out)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@SETTINGS
@given(pools(), st.integers(0, 1))
def test_average_pool_is_the_row_major_float32_sum_divided_by_the_count(case, include_pad):
    x, attrs = case
    attrs["count_include_pad"] = include_pad
    got = _npuc("AveragePool", [x], attrs)[0]
    np.testing.assert_allclose(got, _ort("AveragePool", [x], attrs)[0], rtol=2e-6, atol=1e-6)
    # npuc's definition: the window's taps summed in float32 row by row of the kernel,
    # divided (in float32) by the positions counted
    windows, pads = _padded_windows(x, attrs, 0.0)
    total = np.zeros(windows.shape[:-1], np.float32)
    for t in range(windows.shape[-1]):
        total += windows[..., t]
    inside, _ = _padded_windows(np.ones_like(x[:1, :1]), attrs, 0.0)
    if include_pad:  # the padding counts, positions past it (ceil_mode) do not
        grid = np.ones((1, 1, x.shape[2] + pads[0] + pads[2], x.shape[3] + pads[1] + pads[3]),
                       np.float32)
        inside, _ = _padded_windows(grid, {**attrs, "pads": [0] * 4, "auto_pad": "NOTSET"}, 0.0)
        inside = inside[:, :, :total.shape[2], :total.shape[3]]
    count = np.maximum(inside.sum(axis=-1), 1).astype(np.float32)
    np.testing.assert_array_equal(got, total / count)


@SETTINGS
@given(pools(), st.sampled_from(["MaxPool", "AveragePool"]), st.integers(1, 4),
       st.booleans())
def test_each_fast_pool_loop_gives_the_general_loops_bits(case, op, copies, specials):
    """The eight-plane, grouped, row and plane loops of the 2-D pools against the general
    loop, on inputs with repeated values and zeros of both signs (which a maximum keeps
    first), NaN and infinities, and up to 40 planes (whole and partial groups of eight);
    a max pool's indices too (in both storage orders)."""
    from npuc.compiler.executor.kernels import pool2d
    from npuc.compiler.executor.kernels.pool import pool_nd

    x, attrs = case
    x = np.concatenate([x * (-1) ** i for i in range(copies)], axis=1)
    x = np.round(x * 2) / 2  # ties, and -0.0 next to 0.0
    x[x == 0] = np.where(np.arange((x == 0).sum()) % 2, -0.0, 0.0)
    if specials:
        flat = x.reshape(-1)
        flat[::7], flat[3::11], flat[5::13] = np.nan, -np.inf, np.inf
    k, s, d = attrs["kernel_shape"], attrs["strides"], attrs["dilations"]
    pads = conv_pads(attrs.get("auto_pad", "NOTSET"), x.shape[2:], k, s, d, attrs.get("pads"),
                     None)
    oshape = pool_out_shape(x.shape[2:], k, s, pads, d, attrs.get("ceil_mode", 0),
                            attrs.get("auto_pad", "NOTSET"))
    mode = pool2d.MAX if op == "MaxPool" else pool2d.AVG
    want = pool_nd(x, mode, k, s, pads, d, oshape)[0]
    # eight planes at a time (float32 planes of up to 128 x 128 take them), then without:
    # the grouped loop for none, then for every plane
    for lanes, small in ((True, 0), (False, 0), (False, 1 << 30)):
        old = pool2d.SMALL_PLANE, pool2d.LANES_ON
        pool2d.SMALL_PLANE, pool2d.LANES_ON = small, lanes
        try:
            got = pool2d._pool2d_fast(x, mode, k, s, pads, d, oshape, False)
        finally:
            pool2d.SMALL_PLANE, pool2d.LANES_ON = old
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    for order in (0, 1) if op == "MaxPool" else ():  # the indices, eight planes at a time
        want, want_idx = pool_nd(x, mode, k, s, pads, d, oshape, storage_order=order)
        got, idx = pool2d.max_pool2d_indices(x, k, s, pads, d, oshape, order)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        np.testing.assert_array_equal(idx, want_idx)


@SETTINGS
@given(st.integers(1, 2), st.integers(1, 40), st.integers(1, 9), st.integers(1, 9),
       st.integers(0, 2**16))
def test_global_average_pool_is_the_float64_mean(n, c, h, w, seed):
    x = np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32) * 100
    got = _npuc("GlobalAveragePool", [x], {})[0]
    np.testing.assert_allclose(got, _ort("GlobalAveragePool", [x], {})[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        got, x.astype(np.float64).sum(axis=(2, 3), keepdims=True).__truediv__(h * w)
        .astype(np.float32))


@st.composite
def depthwise(draw):
    c, mult = draw(st.integers(1, 6)), draw(st.sampled_from([1, 1, 2]))
    k = [draw(st.sampled_from([1, 3, 3, 5, 7])), draw(st.sampled_from([1, 3, 3, 5]))]
    s = [draw(st.integers(1, 3)) for _ in range(2)]
    d = [draw(st.integers(1, 2)) for _ in range(2)]
    size = [draw(st.integers((k[i] - 1) * d[i] + 1, 14)) for i in range(2)]
    pads = [draw(st.integers(0, k[i % 2] // 2 * d[i % 2])) for i in range(4)]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((draw(st.integers(1, 2)), c, *size)).astype(np.float32)
    w = rng.standard_normal((c * mult, 1, *k)).astype(np.float32)
    b = rng.standard_normal(c * mult).astype(np.float32)
    return [x, w, b], {"group": c, "strides": s, "dilations": d, "pads": pads}


@SETTINGS
@given(depthwise())
def test_depthwise_convolution_is_the_float64_row_major_sum(case):
    (x, w, b), attrs = case
    got = _npuc("Conv", [x, w, b], attrs)[0]
    np.testing.assert_allclose(got, _ort("Conv", [x, w, b], attrs)[0], rtol=1e-4, atol=1e-4)
    # npuc's definition: products summed in float64 row by row of the kernel, rounded to
    # float32 once, then the bias added in float32
    c, m = x.shape[1], w.shape[0]
    sh, sw = attrs["strides"]
    dh, dw = attrs["dilations"]
    p = attrs["pads"]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])))
    oh, ow = got.shape[2:]
    total = np.zeros((x.shape[0], m, oh, ow))
    src = xp[:, np.arange(m) // (m // c)]
    for ki in range(w.shape[2]):
        for kj in range(w.shape[3]):
            tap = src[:, :, ki * dh:ki * dh + (oh - 1) * sh + 1:sh,
                      kj * dw:kj * dw + (ow - 1) * sw + 1:sw]
            total += w[:, 0, ki, kj].astype(np.float64)[None, :, None, None] * tap
    np.testing.assert_array_equal(got, total.astype(np.float32) + b[None, :, None, None])


@settings(max_examples=40, deadline=None)
@given(st.tuples(st.integers(1, 4), st.integers(1, 4)), st.tuples(st.integers(1, 3), st.integers(1, 3)),
       st.tuples(st.integers(1, 2), st.integers(1, 2)), st.lists(st.integers(0, 2), min_size=4,
                                                              max_size=4),
       st.integers(1, 9), st.integers(0, 40), st.booleans(), st.integers(0, 2**16))
def test_im2col_loop_equals_the_strided_copies(k, s, d, pads, h, extra, mirrored, seed):
    from npuc.compiler.executor.kernels.windows import _im2col_copies, conv_out_shape, im2col

    w = 16 * s[1] + (k[1] - 1) * d[1] + extra  # output rows long enough for the loop
    x = np.random.default_rng(seed).standard_normal((2, 3, h + (k[0] - 1) * d[0], w))
    x = x.astype(np.float32)[:, :, :, ::-1] if mirrored else x.astype(np.float32)
    out = conv_out_shape(x.shape[2:], k, s, pads, d)
    for dtype in (np.float32, np.float64):
        want = _im2col_copies(x, k, s, pads, d, out, dtype)
        assert im2col(x, k, s, pads, d, out, dtype).tobytes() == want.tobytes()

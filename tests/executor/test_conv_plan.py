"""How a float32 convolution is cut into blocks (a function of the shapes alone), and
that every cut, including blocks of rows reading columns gathered once, computes the
convolution: the float64 definition within float32's precision, onnxruntime's numbers,
and the same bits on 1, 2 and 3 threads."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import conv_columns, conv_gather
from npuc.compiler.executor.kernels.conv import conv_nd
from npuc.compiler.executor.kernels.epilogue import Epilogue


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3), group=st.integers(1, 4), p=st.integers(1, 20000),
       k=st.integers(1, 5000), mg=st.integers(1, 3000))
def test_the_blocks_cover_the_convolution_once(n, group, p, k, mg):
    cols, rows = conv_columns.plan(n, group, p, k, mg)
    for blocks, size in ((cols, p), (rows, mg)):
        assert blocks[0][0] == 0 and blocks[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        assert all(b[1] > b[0] for b in blocks)
    assert all((c1 - c0) % 16 == 0 for c0, c1 in cols[:-1])
    assert all(r1 - r0 <= conv_columns.MAX_ROWS for r0, r1 in rows)
    tasks = n * group * len(cols) * len(rows)
    work = n * group * p * k * mg
    if tasks > n * group * max(1, -(-mg // conv_columns.MAX_ROWS)) * len(
            conv_columns.column_blocks(p, k, min(mg, conv_columns.MAX_ROWS))):
        # cut further than the cache alone asks only when the work pays for the blocks
        assert work // conv_columns.MIN_TASK >= 2


def test_small_images_of_large_convolutions_are_cut_by_rows():
    cols, rows = conv_columns.plan(1, 1, 7 * 7, 512 * 9, 512)
    assert len(cols) == 1 and len(rows) == conv_columns.TASKS
    cols, rows = conv_columns.plan(1, 1, 56 * 56, 64 * 9, 64)  # wide enough for columns
    assert len(cols) * len(rows) >= conv_columns.TASKS and len(rows) == 1


CUTS = {
    "columns": dict(COLUMN_BYTES=1 << 10, MIN_COLUMNS=16, MAX_ROWS=8, MIN_ROWS=2, MIN_TASK=1),
    "rows": dict(MIN_COLUMNS=1 << 20, MAX_COLUMNS=1 << 20, MIN_ROWS=2, MIN_TASK=1, TASKS=6),
    "shapes": {},
}


@st.composite
def convolutions(draw):
    """(x, w, b, strides, pads, dilations, group) of a 2-D convolution ONNX defines."""
    group = draw(st.integers(1, 3))
    cg, mg = draw(st.integers(1, 4)), draw(st.integers(1, 9))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    s = [draw(st.integers(1, 3)), draw(st.integers(1, 2))]
    d = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    pads = [draw(st.integers(0, 2)) for _ in range(4)]
    h = draw(st.integers(max(1, (kh - 1) * d[0] + 1 - pads[0] - pads[2]), 13))
    w = draw(st.integers(max(1, (kw - 1) * d[1] + 1 - pads[1] - pads[3]), 37))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((draw(st.integers(1, 3)), group * cg, h, w)).astype(np.float32)
    wt = rng.standard_normal((group * mg, cg, kh, kw)).astype(np.float32)
    b = rng.standard_normal(group * mg).astype(np.float32) if draw(st.booleans()) else None
    return x, wt, b, s, pads, d, group


def _onnxruntime(x, w, b, s, pads, d, group):
    names = ["x", "w"] + (["b"] if b is not None else [])
    node = helper.make_node("Conv", names, ["y"], strides=s, pads=pads, dilations=d,
                            group=group)
    graph = helper.make_graph([node], "g", [
        helper.make_tensor_value_info(k, onnx.TensorProto.FLOAT, a.shape)
        for k, a in zip(names, (x, w, b))], [
        helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(names, (x, w, b))))[0]


@pytest.mark.parametrize("cut", CUTS)
@settings(max_examples=25, deadline=None)
@given(conv=convolutions(), relu=st.booleans())
def test_every_cut_is_the_convolution(cut, conv, relu):
    x, w, b, s, pads, d, group = conv
    act = Epilogue(None, "Relu") if relu else None
    exact = conv_nd(x, w, b, s, pads, d, group, activation=act)  # float64 sums
    want = _onnxruntime(x, w, b, s, pads, d, group)
    want = np.maximum(want, 0) if relu else want
    with pytest.MonkeyPatch.context() as mp:
        for name, value in CUTS[cut].items():
            mp.setattr(conv_columns, name, value)
        with threads.product_precision("float32"):
            got = conv_nd(x, w, b, s, pads, d, group, activation=act)
    scale = max(1.0, float(np.abs(exact).max()))
    assert got.dtype == np.float32 and got.shape == exact.shape == want.shape
    assert np.allclose(got, exact, rtol=1e-5, atol=2e-6 * scale)
    assert np.allclose(got, want, rtol=1e-5, atol=2e-6 * scale)


@pytest.mark.parametrize("cut", ["rows", "columns"])
@pytest.mark.parametrize("kshape, stride, pad, group",
                         [((3, 3), 1, 1, 1), ((1, 1), 2, 0, 1), ((1, 1), 1, 0, 2),
                          ((3, 3), 2, 1, 3), ((5, 2), 1, 2, 1)])
def test_the_bits_do_not_depend_on_the_thread_count(monkeypatch, cut, kshape, stride, pad,
                                                    group):
    for name, value in CUTS[cut].items():
        monkeypatch.setattr(conv_columns, name, value)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 12, 9, 21)).astype(np.float32)  # 3 images, short rows too
    w = rng.standard_normal((18, 12 // group, *kshape)).astype(np.float32)
    b = rng.standard_normal(18).astype(np.float32)
    shared = []
    real = conv_columns._gather_shared
    monkeypatch.setattr(conv_columns, "_gather_shared", lambda *a: shared.append(1) or real(*a))
    got = []
    for n in ("1", "2", "3"):
        monkeypatch.setenv("NPUC_BLAS_THREADS", n)
        with threads.product_precision("float32"):
            got.append(conv_nd(x, w, b, [stride] * 2, [pad] * 4, [1, 1], group,
                               activation=Epilogue(None, "Clip", (0.0, 6.0))))
    assert all(np.array_equal(g, got[0]) for g in got)
    pointwise = kshape == (1, 1) and stride == 1
    # blocks of rows share columns gathered once (a pointwise convolution reads x itself)
    assert len(shared) in (0, 3)
    if cut == "rows" and group == 1 and not pointwise:
        assert len(shared) == 3


def test_columns_too_large_to_share_are_gathered_by_each_block(monkeypatch):
    for name, value in CUTS["rows"].items():
        monkeypatch.setattr(conv_columns, name, value)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 11, 19)).astype(np.float32)
    w = rng.standard_normal((12, 5, 3, 3)).astype(np.float32)
    with threads.product_precision("float32"):
        shared = conv_nd(x, w, None, [1, 2], [1, 0, 2, 1], [1, 1])
        monkeypatch.setattr(conv_columns, "SHARED_BYTES", 0)
        monkeypatch.setattr(conv_columns, "_gather_shared", None)  # not called
        alone = conv_nd(x, w, None, [1, 2], [1, 0, 2, 1], [1, 1])
    assert np.array_equal(shared, alone)


@settings(max_examples=60, deadline=None)
@given(k=st.tuples(st.integers(1, 4), st.integers(1, 4)), s=st.tuples(st.integers(1, 3),
       st.integers(1, 3)), d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       pads=st.tuples(st.integers(0, 3), st.integers(0, 3)), size=st.tuples(
           st.integers(1, 12), st.integers(1, 40)), block=st.tuples(st.integers(0, 10**6),
                                                                   st.integers(1, 10**6)))
def test_gathering_through_phase_planes_is_the_direct_gather(k, s, d, pads, size, block):
    """Any block of positions, any geometry: the same columns, padding read as zero."""
    oh = (size[0] + 2 * pads[0] - (k[0] - 1) * d[0] - 1) // s[0] + 1
    ow = (size[1] + 2 * pads[1] - (k[1] - 1) * d[1] - 1) // s[1] + 1
    if oh < 1 or ow < 1:
        return
    x = np.random.default_rng(0).standard_normal((2, 3, *size)).astype(np.float32)
    p0 = block[0] % (oh * ow)
    p1 = p0 + 1 + block[1] % (oh * ow - p0)
    want = np.full((2 * k[0] * k[1], p1 - p0), np.nan, np.float32)
    got = want.copy()
    rl = ((oh - 1) * s[0] + (k[0] - 1) * d[0]) // s[0] + 1
    ul = ((ow - 1) * s[1] + (k[1] - 1) * d[1]) // s[1] + 1
    phases = np.full((s[0], s[1], rl, ul), np.nan, np.float32)  # stale values are cleared
    geometry = (1, 1, *k, p0, ow, *s, *pads, *d)
    conv_gather._gather(x, want, *geometry)
    conv_gather._gather_phases(x, got, phases, *geometry)
    assert np.array_equal(got, want)

"""Tests of the elementwise, shape, indexing, reduction, sequence, string and misc kernels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from npuc.compiler.executor.kernels import KERNELS, KernelContext, load_all
from npuc.ir.errors import NpucError, UnsupportedError
from tests.executor import onnx_cases as runner

load_all()

# ONNX conformance cases of the basic operators that pass; raise it when more do.
EXPECTED_CONFORMANCE_PASSES = 856

# the kernel modules of the elementwise, shape, indexing, reduction, sequence and string
# operators
BASIC_MODULES = ("elementwise", "binary", "shape_ops", "indexing", "reduce", "sequence",
                 "text", "cast", "creation", "rearrange", "sorting")


def run(op, inputs, opset=21, num_outputs=1, domain="", **attrs):
    """Run one kernel the way the interpreter does."""
    ctx = KernelContext(opset=opset, num_outputs=num_outputs)
    return KERNELS[(domain, op)](list(inputs), attrs, ctx)


# --- the ONNX conformance cases ---------------------------------------------------------


@pytest.fixture(scope="session")
def conformance_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_cases_basic")
    runner.write_cases(str(root), runner.ops_in_modules(*BASIC_MODULES))
    return str(root)


def test_conformance_cases(conformance_dir):
    passed, failed = runner.run_dir(conformance_dir)
    for name, reason in sorted(failed.items()):
        print(f"FAIL {name}: {reason}")
    print(f"{len(passed)} passed, {len(failed)} failed")
    assert len(passed) >= EXPECTED_CONFORMANCE_PASSES


# --- integer arithmetic: exact, in the input dtype ---------------------------------------

INT_TYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32]


def wrap(value: int, dtype) -> int:
    """A Python integer wrapped to ``dtype`` (two's complement)."""
    info = np.iinfo(dtype)
    span = 1 << info.bits
    return (value - int(info.min)) % span + int(info.min)


@st.composite
def int_pair(draw):
    dtype = draw(st.sampled_from(INT_TYPES))
    shape = draw(hnp.array_shapes(max_dims=3, max_side=4))
    a = draw(hnp.arrays(dtype, shape))
    b = draw(hnp.arrays(dtype, shape))
    return a, b


@settings(max_examples=60, deadline=None)
@given(int_pair(), st.sampled_from(["Add", "Sub", "Mul"]))
def test_integer_arithmetic_wraps_in_the_input_dtype(pair, op):
    a, b = pair
    fn = {"Add": lambda x, y: x + y, "Sub": lambda x, y: x - y, "Mul": lambda x, y: x * y}[op]
    (got,) = run(op, [a, b])
    assert got.dtype == a.dtype
    want = [wrap(fn(int(x), int(y)), a.dtype) for x, y in zip(a.ravel(), b.ravel())]
    assert got.ravel().tolist() == want


@settings(max_examples=60, deadline=None)
@given(int_pair())
def test_integer_division_truncates_toward_zero(pair):
    a, b = pair
    (got,) = run("Div", [a, b])
    assert got.dtype == a.dtype
    for x, y, g in zip(a.ravel().tolist(), b.ravel().tolist(), got.ravel().tolist()):
        if y == 0:
            assert g == 0
        else:
            q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)
            assert g == wrap(q, a.dtype)


def test_integer_mod_follows_divisor_or_dividend():
    a = np.array([-7, 7, -7, 7], dtype=np.int32)
    b = np.array([3, -3, -3, 3], dtype=np.int32)
    assert run("Mod", [a, b])[0].tolist() == [2, -2, -1, 1]
    assert run("Mod", [a, b], fmod=1)[0].tolist() == [-1, 1, -1, 1]


def test_pow_keeps_the_base_dtype():
    (got,) = run("Pow", [np.array([2, 3], np.int32), np.array([2.0, 0.5], np.float32)])
    assert got.dtype == np.int32 and got.tolist() == [4, 1]
    (got,) = run("Pow", [np.array([2.0], np.float32), np.array([3], np.int64)])
    assert got.dtype == np.float32 and got.tolist() == [8.0]


def test_comparisons_are_boolean():
    (got,) = run("Less", [np.array([1, 5], np.int8), np.array([3], np.int8)])
    assert got.dtype == bool and got.tolist() == [True, False]


def test_round_is_half_to_even():
    (got,) = run("Round", [np.array([0.5, 1.5, 2.5, -0.5, -1.5], np.float32)])
    assert got.tolist() == [0.0, 2.0, 2.0, -0.0, -2.0]


def test_bfloat16_stays_bfloat16():
    import ml_dtypes

    x = np.array([1.0, -2.0], dtype=ml_dtypes.bfloat16)
    for op in ("Relu", "Exp", "Gelu", "Neg"):
        assert run(op, [x])[0].dtype == x.dtype
    assert run("Add", [x, x])[0].dtype == x.dtype


# --- data movement against numpy ---------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=4, max_side=5)), st.data())
def test_transpose_matches_numpy(x, data):
    perm = data.draw(st.permutations(range(x.ndim)))
    (got,) = run("Transpose", [x], perm=list(perm))
    np.testing.assert_array_equal(got, np.transpose(x, perm))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int16, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5)), st.data())
def test_reshape_with_minus_one_and_zero(x, data):
    keep = data.draw(st.integers(0, x.ndim - 1))
    shape = list(x.shape[:keep]) + [-1]
    shape = [0 if data.draw(st.booleans()) else d for d in shape[:-1]] + [-1]
    (got,) = run("Reshape", [x, np.array(shape, np.int64)])
    np.testing.assert_array_equal(got, x.reshape(list(x.shape[:keep]) + [-1]))


def onnx_slice_reference(n: int, start: int, end: int, step: int) -> list[int]:
    """The indices ONNX Slice picks from a dimension of size n, straight from the spec."""
    start = start + n if start < 0 else start
    end = end + n if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), n), min(max(end, 0), n)
        return list(range(start, end, step))
    start, end = min(max(start, 0), n - 1), min(max(end, -1), n - 1)
    return list(range(start, end, step))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 6), st.integers(-9, 9), st.integers(-9, 9),
       st.sampled_from([-3, -2, -1, 1, 2, 3]))
def test_slice_clamps_like_the_specification(n, start, end, step):
    x = np.arange(n, dtype=np.int64)
    (got,) = run("Slice", [x, np.array([start]), np.array([end]), np.array([0]),
                           np.array([step])])
    assert got.tolist() == onnx_slice_reference(n, start, end, step)


def test_slice_attributes_before_opset_10():
    x = np.arange(12).reshape(3, 4)
    (got,) = run("Slice", [x], opset=9, starts=[1], ends=[100], axes=[1])
    np.testing.assert_array_equal(got, x[:, 1:])


def test_split_uneven_with_num_outputs():
    parts = run("Split", [np.arange(7)], opset=18, num_outputs=3)
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5], [6]]


def test_squeeze_and_unsqueeze_axes_as_attribute_or_input():
    x = np.zeros((1, 3, 1))
    assert run("Squeeze", [x], opset=11, axes=[0])[0].shape == (3, 1)
    assert run("Squeeze", [x, np.array([-1])], opset=13)[0].shape == (1, 3)
    assert run("Unsqueeze", [x, np.array([0, 4])], opset=13)[0].shape == (1, 1, 3, 1, 1)


def test_pad_modes():
    x = np.array([1, 2, 3])
    pads = np.array([2, 1])
    assert run("Pad", [x, pads], mode="reflect")[0].tolist() == [3, 2, 1, 2, 3, 2]
    assert run("Pad", [x, pads], mode="edge")[0].tolist() == [1, 1, 1, 2, 3, 3]
    assert run("Pad", [x, pads], mode="wrap")[0].tolist() == [2, 3, 1, 2, 3, 1]
    assert run("Pad", [x, pads, np.array(9)])[0].tolist() == [9, 9, 1, 2, 3, 9]
    assert run("Pad", [x, np.array([-1, 1])])[0].tolist() == [2, 3, 0]


# --- indexing and reductions -------------------------------------------------------------


def test_scatter_elements_with_duplicate_indices_reduces():
    data = np.zeros(3, np.float32)
    idx = np.array([0, 0, 2])
    upd = np.array([1.0, 2.0, 5.0], np.float32)
    assert run("ScatterElements", [data, idx, upd], reduction="add")[0].tolist() == [3, 0, 5]
    assert run("ScatterElements", [data, idx, upd], reduction="max")[0].tolist() == [2, 0, 5]


def test_gather_nd_with_batch_dims():
    data = np.arange(8).reshape(2, 2, 2)
    idx = np.array([[1], [0]])
    (got,) = run("GatherND", [data, idx], batch_dims=1)
    assert got.tolist() == [[2, 3], [4, 5]]


def test_reduce_empty_axes_is_noop_only_when_asked():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert run("ReduceSum", [x, np.array([], np.int64)], keepdims=0)[0] == 15
    (same,) = run("ReduceSum", [x, np.array([], np.int64)], noop_with_empty_axes=1)
    np.testing.assert_array_equal(same, x)


def test_reduce_axes_attribute_before_opset_18():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    (got,) = run("ReduceMax", [x], opset=13, axes=[1], keepdims=0)
    assert got.dtype == np.int32 and got.tolist() == [2, 5]


def test_argmax_select_last_index():
    x = np.array([[1, 3, 3], [2, 2, 0]])
    assert run("ArgMax", [x], axis=1, keepdims=0)[0].tolist() == [1, 0]
    assert run("ArgMax", [x], axis=1, keepdims=0, select_last_index=1)[0].tolist() == [2, 1]


# --- sequences, optionals, strings, casts ------------------------------------------------


def test_sequence_operators():
    a, b = np.zeros((2, 3)), np.ones((1, 3))
    (seq,) = run("SequenceConstruct", [a, b])
    (seq2,) = run("SequenceInsert", [seq, a, np.array(0)])
    assert len(seq) == 2 and len(seq2) == 3
    assert run("SequenceLength", [seq2])[0] == 3
    np.testing.assert_array_equal(run("SequenceAt", [seq2, np.array(-1)])[0], b)
    assert len(run("SequenceErase", [seq2])[0]) == 2
    assert run("SequenceEmpty", [])[0] == []
    assert run("ConcatFromSequence", [seq], axis=0)[0].shape == (3, 3)
    (parts,) = run("SplitToSequence", [np.arange(5), np.array(2)])
    assert [p.tolist() for p in parts] == [[0, 1], [2, 3], [4]]


def test_optionals():
    assert run("Optional", [])[0] is None
    assert run("OptionalHasElement", [None])[0].item() is False
    assert run("OptionalHasElement", [np.zeros(1)])[0].item() is True
    with pytest.raises(NpucError):
        run("OptionalGetElement", [None])


def test_string_cast_round_trip():
    x = np.array([1.5, -2.0], np.float32)
    (s,) = run("Cast", [x], to=8)
    assert s.dtype == object and s.tolist() == ["1.5", "-2.0"]
    (back,) = run("Cast", [s], to=1)
    np.testing.assert_array_equal(back, x)


def test_float8_cast_saturates():
    import ml_dtypes

    x = np.array([1e6, -np.inf, np.nan], np.float32)
    (got,) = run("Cast", [x], to=17)
    assert got.dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    assert got.astype(np.float32)[:2].tolist() == [448.0, -448.0]
    (raw,) = run("Cast", [x], to=17, saturate=0)
    assert np.isnan(raw.astype(np.float32)).all()


# --- errors ------------------------------------------------------------------------------


def test_bad_data_raises_one_line_errors():
    with pytest.raises(NpucError, match="cannot reshape"):
        run("Reshape", [np.zeros(6), np.array([4, -1])])
    with pytest.raises(NpucError, match="out of range"):
        run("Gather", [np.zeros(3), np.array([3])])
    with pytest.raises(NpucError):
        run("Add", [np.zeros(3), np.zeros(4)])
    with pytest.raises(NpucError):
        run("Concat", [np.zeros((2, 2)), np.zeros((3, 3))], axis=0)


def test_unsupported_cases_say_so():
    with pytest.raises(UnsupportedError):
        run("Gelu", [np.zeros(2, np.float32)], approximate="cubic")
    with pytest.raises(UnsupportedError):
        run("Pad", [np.zeros(2), np.array([1, 1])], mode="mirror")

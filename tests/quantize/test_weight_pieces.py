"""Weights rounded and quantized piece by piece, kept in files when large, and made once
per compile of several programs: the same numbers as the whole-array arithmetic."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npuc.compiler.mapped as mapped
from npuc.compiler.quantize.floatq import E4M3, fp8_weight, reused_weights, rounded_weight
from npuc.compiler.quantize.params import fp8_scale


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of a few rows and a file for anything over 2 KB, so that tiny arrays take
    the paths gigabytes of weights take."""
    monkeypatch.setattr(mapped, "PIECE_BYTES", 512)
    monkeypatch.setattr(mapped, "SPILL_BYTES", 2048)


def _whole(c, axis):
    if axis is None:
        scale = fp8_scale(np.abs(c).max() if c.size else 0.0)
        return (c / scale).astype(E4M3), scale
    w = np.moveaxis(c, axis, 0)
    scale = fp8_scale(np.abs(w.reshape(w.shape[0], -1)).max(axis=1))
    shape = [1] * c.ndim
    shape[axis] = -1
    return (c / scale.reshape(shape)).astype(E4M3), scale


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # constant patch
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3), seed=st.integers(0, 99),
       data=st.data())
def test_fp8_weight_in_pieces_is_the_whole_arithmetic(small_pieces, shape, seed, data):
    rng = np.random.default_rng(seed)
    c = (rng.standard_normal(shape) * rng.uniform(0.01, 100, shape[-1])).astype(np.float32)
    axis = data.draw(st.sampled_from([None] + list(range(len(shape)))))
    q, scale = fp8_weight(c, axis)
    want_q, want_scale = _whole(c, axis)
    assert scale.shape == want_scale.shape and np.array_equal(scale, want_scale)
    assert q.dtype == E4M3 and q.tobytes() == want_q.tobytes()


def test_large_results_live_in_a_file_and_read_back(small_pieces):
    c = np.random.default_rng(0).standard_normal((64, 48)).astype(np.float32)
    r = rounded_weight(c, "bf16")
    assert isinstance(r, np.memmap) and not r.flags.writeable
    import ml_dtypes
    assert np.array_equal(r, c.astype(ml_dtypes.bfloat16).astype(np.float32))


def test_equal_weights_are_made_once_per_compile(small_pieces):
    c = np.random.default_rng(1).standard_normal((64, 48)).astype(np.float32)
    twin = c.copy()
    other = c.copy()
    other[10, 3] = np.nextafter(other[10, 3], np.inf)  # one bit apart, same fingerprint rows
    signed = c.copy()
    signed[5, 5] = 0.0
    with reused_weights():
        first = fp8_weight(c, 1)
        assert fp8_weight(twin, 1) is first
        assert fp8_weight(c, 0) is not first  # another axis is another weight
        assert fp8_weight(other, 1) is not first
        a = rounded_weight(signed, "bf16")
        flipped = signed.copy()
        flipped[5, 5] = -0.0  # equal as numbers, not as bits
        assert rounded_weight(flipped, "bf16") is not a
        assert np.signbit(rounded_weight(flipped, "bf16")[5, 5])
    assert fp8_weight(twin, 1) is not first  # outside a compile nothing is kept

"""The fixed-point requantization against a plain Python integer reference, bit for bit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.quantize.fixedpoint import (
    add_multipliers,
    quantize_multiplier,
    quantized_add,
    quantized_mul,
    requantize,
)

I32 = st.integers(-(2**31), 2**31 - 1)


def srdhm_ref(a, b):
    if a == b == -(2**31):
        return 2**31 - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    s = ab + nudge
    q = abs(s) // (1 << 31)  # C division truncates toward zero
    return q if s >= 0 else -q


def rdbpot_ref(x, e):
    mask = (1 << e) - 1
    rem = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > threshold else 0)


def mbqm_ref(x, m, shift):
    left, right = max(shift, 0), max(-shift, 0)
    x = max(-(2**31), min(2**31 - 1, x * (1 << left)))
    return rdbpot_ref(srdhm_ref(x, m), right)


@settings(max_examples=300, deadline=None)
@given(I32, st.floats(1e-6, 0.99), st.integers(-128, 127))
def test_requantize_matches_reference(acc, m, zp):
    m0, shift = quantize_multiplier(m)
    got = requantize(np.array([[[acc]]], np.int32), [m0], [shift], zp, -128, 127)
    want = max(-128, min(127, mbqm_ref(acc, m0, shift) + zp))
    assert int(got.ravel()[0]) == want


@given(st.floats(1e-8, 1e4))
def test_multiplier_is_close(m):
    m0, shift = quantize_multiplier(m)
    assert 2**30 <= m0 < 2**31
    assert abs(m0 * 2.0 ** (shift - 31) - m) <= m * 2.0**-30


def test_rounding_of_ties():
    # with no right shift only SaturatingRoundingDoublingHighMul rounds: ties go up
    m0, shift = quantize_multiplier(0.5)
    out = requantize(np.array([[[1, 3, -1, -3]]], np.int32), [m0], [shift], 0, -128, 127)
    assert out.ravel().tolist() == [1, 2, 0, -1]
    # a right shift (RoundingDivideByPOT) rounds ties away from zero
    m0, shift = quantize_multiplier(0.25)
    out = requantize(np.array([[[2, 6, -2, -6]]], np.int32), [m0], [shift], 0, -128, 127)
    assert out.ravel().tolist() == [1, 2, -1, -2]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-128, 127), min_size=2, max_size=2),
       st.integers(-128, 127), st.integers(-128, 127),
       st.floats(1e-3, 1.0), st.floats(1e-3, 1.0), st.floats(1e-3, 2.0))
def test_add_matches_reference(ab, za, zb, sa, sb, sy):
    a, b = ab
    ma, mb, mo = add_multipliers(sa, sb, sy)
    got = quantized_add(np.int8([a]), np.int8([b]), za, zb, ma, mb, mo, 3, -128, 127)
    x = mbqm_ref((a - za) << 20, *ma)
    y = mbqm_ref((b - zb) << 20, *mb)
    want = max(-128, min(127, mbqm_ref(x + y, *mo) + 3))
    assert int(got[0]) == want
    # and it is the real sum to within a level
    real = (sa * (a - za) + sb * (b - zb)) / sy + 3
    assert abs(int(got[0]) - max(-128, min(127, real))) <= 1.01


@settings(max_examples=200, deadline=None)
@given(st.integers(-128, 127), st.integers(-128, 127), st.integers(-128, 127),
       st.floats(1e-4, 1.0))
def test_mul_matches_reference(a, b, za, m):
    mm = quantize_multiplier(m)
    got = quantized_mul(np.int8([a]), np.int8([b]), za, 0, mm, -5, -128, 127)
    want = max(-128, min(127, mbqm_ref((a - za) * b, *mm) - 5))
    assert int(got[0]) == want


_multipliers = st.one_of(st.floats(0, 2.0**31, allow_nan=False),
                         st.sampled_from([0.0, 2.0**-40, 2.0**-32, 1 - 2.0**-40, 0.5,
                                          2.0**30 - 1, 1e-300]))


@settings(max_examples=100, deadline=None)
@given(st.lists(_multipliers, max_size=20), st.booleans())
def test_vectorised_multipliers_are_the_scalar_ones(ms, as_float32):
    from npuc.compiler.quantize.fixedpoint import quantize_multiplier, quantize_multipliers

    values = np.array(ms, np.float32 if as_float32 else np.float64)
    try:
        want = [quantize_multiplier(float(m)) for m in values]
    except ValueError as e:
        with pytest.raises(ValueError, match=str(e).split()[0]):
            quantize_multipliers(values)
        return
    m0, sh = quantize_multipliers(values)
    assert m0.dtype == sh.dtype == np.int32
    assert list(zip(m0.tolist(), sh.tolist())) == want

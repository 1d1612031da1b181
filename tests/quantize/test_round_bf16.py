"""bf16 rounding by integer arithmetic gives exactly what ml_dtypes gives."""

import ml_dtypes
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from npuc.compiler.quantize.floatq import round_bf16
from npuc.compiler.schedule.storage import _exact, stored_array
from npuc.ir.graph import Graph

FLOATS = hnp.arrays(np.float32, st.integers(1, 64),
                    elements=st.floats(width=32, allow_nan=True, allow_infinity=True))


@settings(max_examples=50, deadline=None)
@given(FLOATS)
def test_round_bf16_is_ml_dtypes_rounding(x):
    want = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    got = round_bf16(x)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    keep = ~np.isnan(want)
    assert np.array_equal(got.view(np.uint32)[keep], want.view(np.uint32)[keep])


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 64),
                  elements=st.floats(width=32, allow_nan=False, allow_infinity=True)))
def test_exact_weights_are_stored_bit_for_bit(x):
    rounded = round_bf16(x)
    assert _exact(rounded, ml_dtypes.bfloat16)
    g = Graph()
    v = g.add_constant("w", rounded)
    v.meta["stored"] = "bf16"
    stored = stored_array(v)
    assert stored.dtype == ml_dtypes.bfloat16
    back = stored.astype(np.float32)
    assert np.array_equal(back.view(np.uint32), rounded.view(np.uint32))
    if not np.array_equal(x.view(np.uint32), rounded.view(np.uint32)):
        assert not _exact(x, ml_dtypes.bfloat16)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.uint32, st.integers(1, 8), elements=st.one_of(
    st.integers(0, 2**32 - 1),  # any float32 bit pattern, NaNs and subnormals included
    st.integers(0, 2**16 - 1).map(lambda h: int(np.array(h, np.uint16).view(np.float16)
                                               .astype(np.float32).view(np.uint32))))))
def test_fp16_exactness_is_the_round_trip(bits):
    from npuc.compiler.bf16_bits import exact_fp16

    x = bits.view(np.float32)
    with np.errstate(over="ignore"):
        want = np.array_equal(x.astype(np.float16).astype(np.float32), x, equal_nan=True)
    assert exact_fp16(x) == want


BITS = hnp.arrays(np.uint32, st.integers(1, 150), elements=st.one_of(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**16 - 1).map(lambda h: h << 16),  # exact bf16 numbers
    st.integers(0, 2**16 - 1).map(lambda h: int(np.array(h, np.uint16).view(np.float16)
                                               .astype(np.float32).view(np.uint32)))))


@settings(max_examples=60, deadline=None)
@given(BITS, st.sampled_from([7, 64]))
def test_numpy_and_compiled_forms_give_the_same_bits(bits, step):
    """Both forms of each bit operation agree on any float32 pattern, whatever the runs
    the numpy form cuts the array into."""
    from npuc.compiler import bf16_bits, bf16_loops

    x = bits.view(np.float32)
    old = bf16_bits.STEP, bf16_bits.COMPILED_AFTER
    try:
        bf16_bits.STEP, bf16_bits.COMPILED_AFTER = step, 1 << 62  # the numpy form
        got = (bf16_bits.round_to_bf16(x), bf16_bits.exact_bf16(x), bf16_bits.exact_fp16(x),
               bf16_bits.high_halves(x))
    finally:
        bf16_bits.STEP, bf16_bits.COMPILED_AFTER = old
    rounded = np.empty_like(bits)
    loops_high = np.empty(bits.size, np.uint16)
    bf16_loops.round_bits(bits, rounded)
    bf16_loops.high_halves(bits, loops_high)
    assert np.array_equal(got[0].view(np.uint32), rounded)
    assert got[1] == bf16_loops.low_halves_zero(bits)
    assert got[2] == bf16_loops.fp16_exact(bits)
    assert np.array_equal(got[3], loops_high)


def test_a_process_moves_to_the_compiled_loops_after_enough_elements(monkeypatch):
    from npuc.compiler import bf16_bits

    monkeypatch.setattr(bf16_bits, "COMPILED_AFTER", 1000)
    monkeypatch.setattr(bf16_bits, "_passed", 0)
    x = np.arange(600, dtype=np.float32)
    assert bf16_bits._loops() is None
    bf16_bits.round_to_bf16(x)
    assert bf16_bits._loops() is None
    bf16_bits.round_to_bf16(x)
    assert bf16_bits._loops() is not None
    want = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    assert np.array_equal(bf16_bits.round_to_bf16(x), want)

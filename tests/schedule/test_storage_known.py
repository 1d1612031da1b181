"""Weights the quantizer rounds are known exact without being read again: whenever it
says so, reading them says so too, and the storage marks are those of reading every
constant."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.quantize.floatq import rounded_weight
from npuc.compiler.schedule import storage

_values = st.one_of(st.floats(width=32, allow_nan=False), st.sampled_from(
    [0.0, -0.0, np.inf, -np.inf, 65504.0, 7e4, 1e-6, 3e-8, 1.00048828125]))


@settings(max_examples=120, deadline=None)
@given(st.lists(_values, min_size=1, max_size=64), st.sampled_from(["bf16", "fp16"]),
       st.booleans())
def test_known_exact_only_when_exact(values, precision, with_nan):
    c = np.array(values, np.float32).reshape(-1, 1)
    if with_nan:
        c[len(c) // 2] = np.frombuffer(np.uint32(0x7FC01234).tobytes(), np.float32)[0]
    r = rounded_weight(c, precision)
    narrow = storage.FORMATS[precision][1]
    exact = storage._exact(r, narrow)
    assert not storage._known_exact(r, narrow) or exact
    if r is not c:
        assert not r.flags.writeable
        if precision == "fp16" or not with_nan:  # only a kept NaN can leave it inexact
            assert storage._known_exact(r, narrow)


def test_a_writeable_array_is_never_taken_as_exact():
    a = np.zeros(8, np.float32)
    storage.note_exact(a, "bf16")
    assert not storage._known_exact(a, storage.FORMATS["bf16"][1])
    view = a[:4]
    view.flags.writeable = False  # its base can still change
    storage.note_exact(view, "bf16")
    assert not storage._known_exact(view, storage.FORMATS["bf16"][1])

"""first_nonfinite finds the first NaN or infinity and counts them, as a plain scan does."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.mapped import first_nonfinite

SPECIALS = [np.nan, np.inf, -np.inf, 1.0, -0.0, 3e38]


def _plain(a):
    bad = ~np.isfinite(a)
    if not bad.any():
        return None
    at = np.unravel_index(int(np.argmax(bad)), a.shape)
    return (tuple(int(i) for i in at), bool(np.isnan(a[at])), int(bad.sum()),
            int(np.isnan(a).sum()))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([np.float16, np.float32, np.float64]),
       st.tuples(st.integers(0, 9), st.integers(1, 6)),
       st.lists(st.tuples(st.integers(0, 59), st.sampled_from(SPECIALS)), max_size=4))
def test_first_nonfinite_matches_a_plain_scan(dtype, shape, changes):
    a = np.arange(shape[0] * shape[1], dtype=np.float64).reshape(shape).astype(dtype)
    for i, value in changes:
        if a.size:
            a.flat[i % a.size] = value
    assert first_nonfinite(a) == _plain(a)

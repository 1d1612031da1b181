"""numpy's cblas_sgemm called from Numba: the bits of numpy.matmul, blocks of rows and
columns at any offset and row stride."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.executor.kernels import numpy_blas

FOUND = numpy_blas.address()


@settings(max_examples=40, deadline=None)
@given(m=st.integers(2, 70), k=st.integers(1, 300), n=st.integers(2, 90),
       r0=st.integers(0, 5), c0=st.integers(0, 7), seed=st.integers(0, 2**31))
def test_a_block_through_numpy_blas_has_numpys_bits(m, k, n, r0, c0, seed):
    if not FOUND[0]:  # numpy on a BLAS without cblas_sgemm: the kernels keep numpy's calls
        assert FOUND == (0, False)
        return
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m + r0, k)).astype(np.float32)
    b = rng.standard_normal((k, n + c0)).astype(np.float32)  # columns c0.. of each row
    c = np.full((m + r0, n + c0), np.nan, np.float32)
    numpy_blas.sgemm(FOUND[0], FOUND[1], m, n, k, a.reshape(-1), r0 * k, k, b.reshape(-1), c0,
                     n + c0, c.reshape(-1), r0 * (n + c0) + c0, n + c0)
    want = np.matmul(a[r0:], b[:, c0:])
    assert c[r0:, c0:].tobytes() == want.tobytes()
    assert np.isnan(c[:r0]).all() and np.isnan(c[:, :c0]).all()  # nothing else written


def test_the_function_is_found_in_numpys_wheel():
    config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    if "scipy-openblas" in str(config.get("name", "")):
        assert FOUND[0] != 0

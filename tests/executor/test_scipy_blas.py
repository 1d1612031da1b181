"""SciPy's BLAS tables load for Numba without the rest of scipy.linalg."""

import subprocess
import sys

import pytest

pytest.importorskip("scipy")

SCRIPT = """
import sys
from npuc.compiler.executor import scipy_blas
scipy_blas.load()
assert "scipy.linalg" not in sys.modules, "scipy.linalg was imported"
blas = sys.modules["scipy.linalg.cython_blas"]
assert "dgemm" in blas.__pyx_capi__
assert "dgetrf" in sys.modules["scipy.linalg.cython_lapack"].__pyx_capi__
import numba.np.linalg  # Numba's own check finds the loaded modules
numba.np.linalg.ensure_blas()
numba.np.linalg.ensure_lapack()
assert "scipy.linalg" not in sys.modules
import numpy as np
import scipy.linalg
assert scipy.linalg.cython_blas is blas
assert np.allclose(scipy.linalg.inv(np.diag([2.0, 4.0])), np.diag([0.5, 0.25]))
print("ok")
"""


def test_blas_modules_load_alone_and_scipy_linalg_imports_after():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_load_does_nothing_once_scipy_linalg_is_imported():
    import scipy.linalg  # noqa: F401

    from npuc.compiler.executor import scipy_blas

    before = dict(sys.modules)
    scipy_blas.load()
    assert sys.modules.keys() == before.keys()

"""Imported once by the local workers' fork server before it forks any worker: the
executor's kernels, the quantization modules and Numba's compiler (imported by Numba on
its first compilation, about two seconds) are then already loaded in every worker,
instead of each worker loading them on its first task."""

import numba
import numpy as np

from npuc.compiler import ops  # noqa: F401  (npuc's own operators and their kernels)
from npuc.compiler.executor import scipy_blas
from npuc.compiler.executor.kernels import load_all

scipy_blas.load()
load_all()


@numba.njit
def _first_compilation(x):
    return x + 1


_first_compilation(np.zeros(1))

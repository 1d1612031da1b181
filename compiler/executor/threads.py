"""One decision about threads, taken once per process.

On a small machine Numba's worker threads and OpenBLAS's threads compete for the same
cores, and a kernel that mixes both runs several times slower. npuc gives the cores to
BLAS (large matrix products dominate convolutions and transformers) and runs its own
Numba kernels single-threaded unless ``NPUC_NUM_THREADS`` asks otherwise.
"""

from __future__ import annotations

import os

_done = False


def configure() -> None:
    """Set Numba's thread count (BLAS keeps its own default)."""
    global _done
    if _done:
        return
    _done = True
    try:
        import numba

        wanted = int(os.environ.get("NPUC_NUM_THREADS", "1"))
        numba.set_num_threads(max(1, min(wanted, numba.config.NUMBA_NUM_THREADS)))
    except Exception:  # numba's thread pool is optional for correctness
        pass

"""Numba's cache loads without the target refresh, and the same functions come back."""

from __future__ import annotations

import contextlib
import subprocess
import sys

from npuc.compiler.executor import numba_cache

MODULE = """
import numba

@numba.njit(cache=True)
def scaled_sum(x, k):
    s = 0.0
    for v in x:
        s += v * k
    return s
"""

RUN = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "install":
    from npuc.compiler.executor import scipy_blas
    scipy_blas.load()
import cached_fn
value = cached_fn.scaled_sum(np.arange(10.0), 3.0)
hits = sum(cached_fn.scaled_sum.stats.cache_hits.values())
print(value, hits, "numba.np.random.legacy" in sys.modules)
"""


def _run(folder, mode: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", RUN, str(folder), mode], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_a_cached_function_loads_without_the_refresh(tmp_path):
    (tmp_path / "cached_fn.py").write_text(MODULE)
    assert _run(tmp_path, "plain") == ["135.0", "0", "True"]  # compiled, then cached
    assert _run(tmp_path, "plain") == ["135.0", "1", "True"]  # loaded after a refresh
    # loaded from the cache with the runtime started only: Numba's implementation
    # modules (here its random generators) are not imported
    assert _run(tmp_path, "install") == ["135.0", "1", "False"]


def test_a_load_that_fails_is_done_the_usual_way(monkeypatch):
    from numba.core import caching
    from numba.core.registry import cpu_target

    numba_cache.install()
    ctx = cpu_target.target_context
    refreshed, attempts = [], []
    monkeypatch.setattr(ctx, "refresh", lambda: refreshed.append(True))

    class Flaky:
        """A cache whose first load needs what the refresh brings."""

        def _guard_against_spurious_io_errors(self):
            return contextlib.nullcontext()

        def _load_overload(self, sig, target_context):
            attempts.append(bool(refreshed))
            if not refreshed:
                raise LookupError("no implementation registered")
            return "loaded"

    assert caching.Cache.load_overload(Flaky(), (), ctx) == "loaded"
    assert attempts == [False, True]

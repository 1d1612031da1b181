"""Numba's cache loads without its compiler's set-up.

Before its first cache load in a process, Numba refreshes its CPU target: it imports every
implementation module it has (NumPy's array functions, random generators, typed lists,
dictionaries, sets, datetime, polynomials: about 80 modules) and installs their
registries, which a compilation needs but loading machine code from the cache does not:
that needs the Numba runtime (NRT) started, and the code's library linked. The refresh
cost a warm compile about 0.3 s of its 0.4 s first call (ResNet-50's first convolution).

:func:`install` makes a cache load start the runtime only, and load. A load that fails
that way (an exception: a cached function that needs what the refresh brings) is done
again the ordinary way, refresh first; a signature not in the cache compiles as always
(Numba's compiler refreshes the target itself before it compiles). When Numba's cache is
laid out otherwise than this module expects, nothing is changed.
"""

from __future__ import annotations

_installed = False


def install() -> None:
    """Make Numba's cache loads skip the target refresh (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    try:
        from numba.core import caching
        from numba.core.runtime import rtsys
    except ImportError:
        return
    cache = getattr(caching, "Cache", None)
    ordinary = getattr(cache, "load_overload", None)
    if ordinary is None or not all(hasattr(cache, name) for name in (
            "_load_overload", "_guard_against_spurious_io_errors")) \
            or not hasattr(rtsys, "initialize"):
        return

    def load_overload(self, sig, target_context):
        try:
            rtsys.initialize(target_context)
            with self._guard_against_spurious_io_errors():
                return self._load_overload(sig, target_context)
        except Exception:  # what the refresh would have brought: load it the usual way
            return ordinary(self, sig, target_context)

    load_overload.__doc__ = ordinary.__doc__
    cache.load_overload = load_overload

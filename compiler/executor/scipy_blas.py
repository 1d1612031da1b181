"""SciPy's BLAS and LAPACK tables for Numba, without the rest of ``scipy.linalg``.

On its first compilation or cache load in a process, Numba checks that BLAS is there by
``import scipy.linalg.cython_blas``. That import runs ``scipy.linalg/__init__.py`` first,
which imports all of ``scipy.linalg`` and, through SciPy's array-API layer, ``numpy.f2py``:
about half a second of a one-second first call, for two extension modules that need
none of it (they hold only function-pointer tables, which Numba reads by name).

:func:`load` loads those two modules straight from their files under their own names, so
Numba's import finds them already there. A later ``import scipy.linalg`` runs the package
as usual and reuses them (:class:`_Attach` makes them its attributes, as an ordinary
import would have). Nothing changes when SciPy is missing, laid out differently,
or ``scipy.linalg`` is already imported: Numba then imports it as it always did.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

MODULES = ("scipy.linalg.cython_blas", "scipy.linalg.cython_lapack")


def load() -> None:
    """Load SciPy's ``cython_blas`` and ``cython_lapack`` on their own (once; cheap after),
    and make Numba's cache loads skip its compiler's set-up (:mod:`.numba_cache`): what
    runs before Numba's first call in a process."""
    from . import numba_cache

    _load_tables()
    numba_cache.install()


def _load_tables() -> None:
    if "scipy.linalg" in sys.modules or all(name in sys.modules for name in MODULES):
        return
    try:
        import scipy
    except ImportError:  # Numba reports missing BLAS itself, if it is ever needed
        return
    folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
    for name in MODULES:
        if name in sys.modules:
            continue
        path = _extension(folder, name.rpartition(".")[2])
        if path is None:
            return
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:  # leave it to the ordinary import
            del sys.modules[name]
            return
    sys.meta_path.insert(0, _Attach())


def _extension(folder: str, stem: str) -> str | None:
    """The compiled module ``stem`` in ``folder`` for this interpreter, or None."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, stem + suffix)
        if os.path.isfile(path):
            return path
    return None


class _Attach(importlib.abc.MetaPathFinder):
    """Sets the loaded modules as attributes of ``scipy.linalg`` when that is imported
    (then leaves ``sys.meta_path``); finds nothing itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "scipy.linalg":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _AttachingLoader(spec.loader)
        return spec


class _AttachingLoader(importlib.abc.Loader):
    """Runs ``loader``, then binds the already loaded submodules to the package."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # the rest of the loader's interface (resources, ...)
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        for name in MODULES:
            if name in sys.modules:
                setattr(module, name.rpartition(".")[2], sys.modules[name])

"""What runs inside a fan-out's workers, and what to do when a work item fails.

A worker runs :func:`call` for each item: it sets the process up once
(:func:`worker_setup`) and loads the shared data once (:func:`load_shared`, from a
:class:`SharedFile` or Ray's object store). The backends (:mod:`npuc.compiler.fanout_local`,
:mod:`npuc.compiler.fanout_ray`) report a failed item through :func:`retry_or_fail`; the
caller's side (:class:`npuc.compiler.parallel.Fanout`, :func:`~npuc.compiler.parallel.fan_out`,
:func:`~npuc.compiler.parallel.share`) is in :mod:`npuc.compiler.parallel`.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

from npuc.ir.errors import NpucError


class FanoutError(NpucError):
    """A work item failed on every attempt; the run has no complete result."""


def describe(item) -> str:
    """How an item is named in reports: short, whatever it holds."""
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


def retry_or_fail(i: int, item, what: str, attempt: int, fanout, error) -> None:
    """After attempt ``attempt`` of item ``i`` failed because ``what``: report a retry on
    ``fanout`` (a :class:`~npuc.compiler.parallel.Fanout`), or raise :class:`FanoutError`
    when the retries are spent."""
    if attempt > fanout.retries:
        raise FanoutError(f"work item {i} ({describe(item)}) failed {attempt} times, last "
                          f"because {what}; no result") from error
    fanout.report(f"work item {i} ({describe(item)}) failed ({what}); retrying "
                  f"(attempt {attempt + 1} of {fanout.retries + 1})")


@dataclass(frozen=True)
class SharedFile:
    """A pickled object in a folder: ``object.pkl`` and its buffers in ``buffers.bin``."""

    folder: str
    offsets: tuple  # (start, length) of each buffer in buffers.bin


_loaded: dict = {}  # per worker process: shared handle -> object


def load_shared(handle):
    """The object behind ``handle`` (loaded once per process and kept)."""
    key = handle if isinstance(handle, SharedFile) else ("ray", handle[0].hex())
    if key in _loaded:
        return _loaded[key]
    if isinstance(handle, SharedFile):
        import numpy as np

        path = os.path.join(handle.folder, "buffers.bin")
        mapped = np.memmap(path, mode="c") if os.path.getsize(path) else np.zeros(0, np.uint8)
        buffers = [mapped[a:a + n] for a, n in handle.offsets]
        with open(os.path.join(handle.folder, "object.pkl"), "rb") as f:
            obj = pickle.loads(f.read(), buffers=buffers)
    else:
        obj = _ray_get(handle)
    _loaded.clear()  # one job's data at a time: a worker process serves one run
    _loaded[key] = obj
    return obj


def worker_setup() -> None:
    """Run in each worker process: one BLAS thread, since the workers fill the cores; the
    executor's kernels and Numba's compiler loaded (once) before the first task."""
    os.environ.setdefault("NPUC_BLAS_THREADS", "1")
    import npuc.compiler.fanout_preload  # noqa: F401


def call(fn, shared, item):
    """What a worker runs for one item."""
    worker_setup()
    if shared is None:
        return fn(item)
    return fn(load_shared(shared), item)


def _ray_get(handle):
    """The object a Ray handle of :func:`npuc.compiler.fanout_ray.put` stores (Ray is
    there: this runs in a Ray worker)."""
    import ray

    data, arrays = ray.get(handle[0])
    return pickle.loads(data, buffers=arrays)

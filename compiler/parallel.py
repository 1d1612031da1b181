"""Fan-out: one function mapped over many work items, on local processes or a Ray cluster.

Calibration over many samples, verification over a folder of inputs and a matrix of models
and chips are embarrassingly parallel. :func:`fan_out` maps a module-level function over
work items and returns the results in item order, whatever order they finish in::

    fanout = Fanout(workers=2)                # or Fanout(ray="auto"), Fanout(ray="")
    shared = share(job, fanout)               # the big read-only data, stored once
    results = fan_out(run_part, parts, fanout, shared=shared)   # run_part(job, part)

- Work items carry only what differs between tasks (sample index ranges, a model path);
  what all tasks read (a graph and its weights, the calibration samples) is stored once by
  :func:`share`: pickled with its arrays out of band into a memory-mapped file that every
  local worker maps (copy-on-write), or put once into Ray's object store, where workers on
  one node read the same shared memory. Each worker process loads it once.
- A task that raises is retried, and so is a task whose worker died (killed, out of
  memory, a lost node), up to ``Fanout.retries`` more times; each retry is reported on
  stderr and recorded in ``Fanout.events``. A task that still fails fails the whole run
  (:class:`FanoutError`): a partial result is never returned as if whole. A user error
  (:class:`NpucError`) is not retried: it would fail again.
- Ctrl-C stops every worker and the submitted tasks, then raises ``KeyboardInterrupt``.
- One progress bar counts the work done by all workers.
- Each worker runs BLAS single-threaded (``NPUC_BLAS_THREADS=1`` unless set): the workers
  already use the cores.

Ray is imported only when ``Fanout.ray`` is not ``None``; install it with ``npuc[ray]``.
The backends are :mod:`.fanout_local` and :mod:`.fanout_ray`; what runs inside a worker
(loading the shared data, the retry rule) is :mod:`.fanout_worker`.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import threading
from dataclasses import dataclass, field

from npuc.ir.errors import NpucError

from . import fanout_local, fanout_ray
from .fanout_worker import FanoutError, SharedFile  # noqa: F401  (re-exported)


@dataclass
class Fanout:
    """Where work runs: ``workers`` local processes, or Ray tasks when ``ray`` is not None
    (``""``: a local Ray, started here; ``"auto"`` or ``HOST:PORT``: a running cluster)."""

    workers: int = 1
    ray: str | None = None
    retries: int = 2
    events: list = field(default_factory=list)  # what was retried, as sentences

    def __post_init__(self):
        if self.workers < 1:
            raise NpucError(f"--workers must be at least 1, not {self.workers}")

    @property
    def parallel(self) -> bool:
        """Whether work leaves this process."""
        return self.ray is not None or self.workers > 1

    def start(self) -> "Fanout":
        """Start preparing the workers now (local workers' fork server loads npuc's
        executor in the background), so that it overlaps the caller's own work."""
        if self.ray is None and self.workers > 1:
            fanout_local.start()
        return self

    def slots(self) -> int:
        """How many tasks run at once: the local workers, or the Ray cluster's CPUs
        (joining the cluster if needed)."""
        if self.ray is None:
            return self.workers
        fanout_ray.connect(self.ray)
        return fanout_ray.cpus()

    def items_for(self, n: int) -> int:
        """How many work items to cut ``n`` units into: two per task slot, so a slow or
        lost worker holds back little, but few enough that each amortizes its setup."""
        return max(1, min(n, 2 * self.slots()))

    def report(self, message: str) -> None:
        self.events.append(message)
        print(f"npuc: {message}", file=sys.stderr)


def split_range(n: int, parts: int) -> list[tuple[int, int]]:
    """``[0, n)`` cut into ``parts`` contiguous ranges of nearly equal length."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def fan_out(fn, items: list, fanout: Fanout, shared=None, desc: str = "working",
            weights: list | None = None, progress: bool = False) -> list:
    """``[fn(shared_value, item) for item in items]`` (``fn(item)`` without ``shared``),
    run by ``fanout``'s workers. ``fn`` must be importable by name (a module-level
    function); ``weights`` are the units of progress each item is worth."""
    items = list(items)
    if not items:
        return []
    weights = weights or [1] * len(items)
    bar = _bar(desc, sum(weights), progress)
    try:
        if fanout.ray is not None:
            return fanout_ray.run(fn, items, fanout, shared, weights, bar)
        return fanout_local.run(fn, items, fanout, shared, weights, bar)
    finally:
        if bar is not None:
            bar.close()


def _bar(desc: str, total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


# -- shared data -----------------------------------------------------------------------

def dumps(obj) -> tuple[bytes, list]:
    """``obj`` pickled with its large buffers (numpy arrays) apart, not copied in."""
    buffers: list = []
    out: dict = {}

    def work():
        # a graph is a deep web of references: pickling recurses once per link
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, 1_000_000))
        try:
            out["data"] = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        except BaseException as e:  # re-raised in the caller's thread
            out["error"] = e
        finally:
            sys.setrecursionlimit(old)

    previous = threading.stack_size(1 << 30)
    try:
        thread = threading.Thread(target=work)
        thread.start()
    finally:
        threading.stack_size(previous)
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["data"], buffers


_ALIGN = 64  # arrays start on cache lines, as numpy allocates them


def share(obj, fanout: Fanout):
    """``obj`` stored once for every worker of ``fanout``: a Ray object reference (Ray) or
    a :class:`SharedFile` in a temporary folder removed at exit (local workers)."""
    data, buffers = dumps(obj)
    if fanout.ray is not None:
        fanout_ray.connect(fanout.ray)
        return fanout_ray.put(data, buffers)
    import atexit
    import shutil

    folder = _folder(sum(b.raw().nbytes for b in buffers))
    atexit.register(shutil.rmtree, folder, True)
    offsets, pos = [], 0
    with open(os.path.join(folder, "buffers.bin"), "wb") as f:
        for buf in buffers:
            raw = buf.raw()
            pad = -pos % _ALIGN
            f.write(b"\0" * pad)
            pos += pad
            f.write(raw)
            offsets.append((pos, raw.nbytes))
            pos += raw.nbytes
    with open(os.path.join(folder, "object.pkl"), "wb") as f:
        f.write(data)
    return SharedFile(folder, tuple(offsets))


def _folder(size: int) -> str:
    """A new temporary folder: in shared memory (``/dev/shm``) when it has room, since
    the workers map the file and writing it to a disk first only costs time."""
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize > 2 * size + (256 << 20):
            return tempfile.mkdtemp(prefix="npuc-share-", dir=shm)
    except OSError:  # no /dev/shm here
        pass
    return tempfile.mkdtemp(prefix="npuc-share-")


def release(handle) -> None:
    """Free what :func:`share` stored, once no new task will read it (workers that have
    mapped the file keep their mapping)."""
    if isinstance(handle, SharedFile):
        import shutil

        shutil.rmtree(handle.folder, ignore_errors=True)

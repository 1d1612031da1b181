"""Work functions the fan-out tests run in worker processes (importable by name)."""

import os
import signal
import time

import numpy as np

from npuc.ir.errors import NpucError


def square(x):
    return x * x


def session(item):
    """The worker's process id and session id."""
    return os.getpid(), os.getsid(0)


def weighted_sum(shared, item):
    """Reads the shared arrays: proves every worker sees the same data."""
    return float(shared["weights"][item[0]:item[1]].astype(np.float64).sum()) + shared["bias"]


def is_shared_mapping(shared, item):
    """Whether the shared array is a view of a memory-mapped file in the worker."""
    import mmap

    base = shared["weights"]
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return isinstance(base, mmap.mmap)


def _first_time(folder, item) -> bool:
    """True on the first call for ``item`` (a marker file per item in ``folder``)."""
    marker = os.path.join(folder, f"seen-{item}")
    if os.path.exists(marker):
        return False
    with open(marker, "w"):
        pass
    return True


def flaky(folder, item):
    """Raises on its first attempt at odd items."""
    if item % 2 and _first_time(folder, item):
        raise RuntimeError(f"transient failure at {item}")
    return item + 100


def dies_once(folder, item):
    """Kills its own worker process mid-task, once, on item 1."""
    if item == 1 and _first_time(folder, item):
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return item * 10


def always_fails(item):
    raise RuntimeError("broken for good")


def bad_input(item):
    raise NpucError(f"sample {item}: no such file")


def sleeps(item):
    time.sleep(60)
    return item


def node_of(item):
    """The Ray node a task ran on (after a pause, so that tasks overlap)."""
    import ray

    time.sleep(0.3)
    return ray.get_runtime_context().get_node_id()

"""Fan-out on Ray (``--ray [ADDRESS]``): one Ray task per work item.

The shared data goes into Ray's object store once (:func:`put`); tasks receive its
reference inside a list, so Ray does not fetch it for every task, and each worker
process loads it once (:func:`npuc.compiler.fanout_worker.load_shared`), its arrays read
zero-copy from the node's shared memory. Ray's own task retries are off: a task that
raises or whose worker or node is lost is resubmitted here, so each retry is reported.
"""

from __future__ import annotations

from npuc.ir.errors import NpucError

from .fanout_worker import call, retry_or_fail

_started_here = False


def _ray():
    try:
        import ray
    except ImportError:
        raise NpucError("--ray needs Ray: pip install 'npuc[ray]'") from None
    return ray


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (a local one started here when empty), once."""
    global _started_here
    ray = _ray()
    if ray.is_initialized():
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=False, include_dashboard=False)
        else:
            ray.init(log_to_driver=False, include_dashboard=False)
            _started_here = True
    except ConnectionError as e:
        raise NpucError(f"--ray {address}: cannot connect to a Ray cluster there ({e})") \
            from None


def cpus() -> int:
    """The CPUs of the cluster joined (each runs one task at a time)."""
    return max(1, int(_ray().cluster_resources().get("CPU", 1)))


def put(data: bytes, buffers: list):
    """Store a pickled object once; the handle tasks get (a reference inside a list, read
    by :func:`npuc.compiler.fanout_worker.load_shared`)."""
    import numpy as np

    ray = _ray()
    arrays = [np.frombuffer(b.raw(), dtype=np.uint8) for b in buffers]
    return [ray.put((data, arrays))]


def _lost_errors(ray) -> tuple:
    ex = ray.exceptions
    names = ("WorkerCrashedError", "NodeDiedError", "ObjectLostError",
             "OwnerDiedError", "LocalRayletDiedError", "TaskUnschedulableError",
             "ActorDiedError")
    return tuple(getattr(ex, n) for n in names if hasattr(ex, n))


def run(fn, items, fanout, shared, weights, bar) -> list:
    """Results of ``fn`` over ``items`` in item order (see :func:`fan_out`)."""
    ray = _ray()
    connect(fanout.ray)
    task = ray.remote(num_cpus=1, max_retries=0, retry_exceptions=False)(call)
    results: dict[int, object] = {}
    attempts = [0] * len(items)
    running: dict = {}

    def submit(i: int) -> None:
        attempts[i] += 1
        running[task.remote(fn, shared, items[i])] = i

    lost_types = _lost_errors(ray)
    try:
        for i in range(len(items)):
            submit(i)
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                i = running.pop(ref)
                try:
                    results[i] = ray.get(ref)
                except lost_types as e:
                    retry_or_fail(i, items[i], f"its worker was lost ({type(e).__name__})",
                                   attempts[i], fanout, e)
                    submit(i)
                    continue
                except ray.exceptions.RayTaskError as e:
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, NpucError):
                        raise cause from None
                    what = f"{type(cause).__name__}: {cause}" if cause else str(e)
                    retry_or_fail(i, items[i], what, attempts[i], fanout, e)
                    submit(i)
                    continue
                if bar is not None:
                    bar.update(weights[i])
    except BaseException as e:
        for ref in running:
            ray.cancel(ref, force=True)
        if isinstance(e, KeyboardInterrupt) and _started_here:
            ray.shutdown()  # the local Ray this run started, with its workers
        raise
    return [results[i] for i in range(len(items))]

"""Fan-out on local worker processes (``--workers N``): a process pool started by the
``forkserver`` method (``spawn`` where there is none), so workers never inherit a parent's
threads mid-flight. A pool that loses a worker is rebuilt and its unfinished items run
again."""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from npuc.ir.errors import NpucError

from .fanout_worker import call, retry_or_fail, worker_setup


def _context():
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        # workers fork from a server that has imported npuc's executor once
        ctx.set_forkserver_preload(["npuc.compiler.fanout_preload"])
    return ctx


def start() -> None:
    """Start the fork server (it imports the preloaded modules in the background)."""
    ctx = _context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _worker_init() -> None:
    """Workers leave Ctrl-C to the parent, which stops them all (no tracebacks from each).

    Each worker starts a session of its own. Linux's autogroup scheduling shares the CPU
    between sessions, not processes: on a machine busy with other sessions' jobs, workers
    left in the caller's session would split one session's share between them and run no
    faster than one process (measured: 2 workers 1.06x and 0.84x of 1 under load), while
    Ray's workers, in the Ray server's session, gained 1.7x. In their own sessions local
    workers count as the separate jobs they are. The parent still stops them (Ctrl-C,
    errors) and they end with it (their task queue closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.setsid()
    except OSError:  # already a session or group leader: keep the caller's session
        pass
    worker_setup()


class _Run:
    """One fan-out over a process pool: submissions, attempts, results."""

    def __init__(self, fn, items, fanout, shared, weights, bar):
        self.fn, self.items, self.fanout, self.shared = fn, items, fanout, shared
        self.weights, self.bar = weights, bar
        self.results: dict[int, object] = {}
        self.attempts = [0] * len(items)
        self.running: dict = {}
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        n = min(self.fanout.workers, len(self.items) - len(self.results))
        return ProcessPoolExecutor(max_workers=max(1, n), mp_context=_context(),
                                   initializer=_worker_init)

    def submit(self, i: int) -> bool:
        """Run item ``i`` (again); False when the pool is already broken."""
        try:
            future = self.pool.submit(call, self.fn, self.shared, self.items[i])
        except BrokenProcessPool:
            return False
        self.attempts[i] += 1
        self.running[future] = i
        return True

    def harvest(self, done) -> list[int]:
        """Record finished futures, resubmit items that raised; the items whose worker
        was lost (the pool is broken then)."""
        lost = []
        for future in done:
            i = self.running.pop(future)
            error = future.exception()
            if error is None:
                self.results[i] = future.result()
                if self.bar is not None:
                    self.bar.update(self.weights[i])
            elif isinstance(error, NpucError):
                raise error  # the user's mistake: every attempt would fail the same way
            elif isinstance(error, BrokenProcessPool):
                lost.append(i)
            else:
                retry_or_fail(i, self.items[i], f"{type(error).__name__}: {error}",
                               self.attempts[i], self.fanout, error)
                if not self.submit(i):
                    lost.append(i)
        return lost

    def rebuild(self, lost: list[int]) -> None:
        """A worker died, which breaks the pool: collect what finished, start a new pool
        and run every unfinished item again."""
        wait(list(self.running))
        lost = sorted(set(lost + self.harvest(list(self.running))))
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()
        for i in lost:
            retry_or_fail(i, self.items[i], "its worker was lost", self.attempts[i],
                           self.fanout, None)
            self.submit(i)

    def go(self) -> list:
        for i in range(len(self.items)):
            self.submit(i)
        while self.running:
            done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
            lost = self.harvest(done)
            if lost:
                self.rebuild(lost)
        self.pool.shutdown(wait=True)
        return [self.results[i] for i in range(len(self.items))]


def run(fn, items, fanout, shared, weights, bar) -> list:
    """Results of ``fn`` over ``items`` in item order (see :func:`fan_out`)."""
    job = _Run(fn, items, fanout, shared, weights, bar)
    try:
        return job.go()
    except BaseException:
        _stop(job.pool)
        raise


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop at once: cancel what has not started and end the workers."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=5)

"""How many threads npuc's kernels use, and the one pool they run on.

npuc computes on its own pool of threads: a large matrix product is cut into row
blocks, a depthwise convolution or a pool into channel blocks, and the blocks are handed
out to the pool's threads as they become free (:func:`parallel`). Inside a block BLAS
and Numba run single-threaded, so there is exactly one thread per core and no two pools
compete for the cores.

Why not BLAS's own threads: OpenBLAS's threads wait for each other by spinning, and it
cuts a product into one fixed share per thread. When another busy process holds one of
the cores, every product waits for the descheduled thread. Measured in the same runs
(2 cores; onnxruntime with 2 threads alongside):

  milliseconds, best of 4 (median)   1 BLAS thread  2 BLAS threads  onnxruntime
  ResNet-50, one busy neighbour      270 (287)      612 (1057)      242 (286)
  BERT-base, one busy neighbour      414 (512)      972 (2477)      499 (533)
  ResNet-50, quiet machine           119 (122)       71 (72)         39 (39)
  BERT-base, quiet machine           284 (288)      164 (165)       120 (122)

npuc's pool hands out about four blocks per thread and its threads sleep (never spin)
while they wait, so a slowed thread leaves its blocks to the others: two threads help on
a quiet machine and do not hurt on a busy one, and the thread count no longer depends on
the load.

- ``NPUC_BLAS_THREADS=N`` sets the pool's size (default: the cores this process may run
  on); ``0`` leaves BLAS alone with its own threads and npuc computes on one thread.
- Each call of the pool keeps its threads off the core the caller is on then
  (``placement.py``: on a virtual machine, after a pause, Linux had put both on one core;
  ``NPUC_PIN_THREADS=0`` leaves them free).
- Numba's own threading layer is not used (``NPUC_NUM_THREADS`` sets its thread count,
  default 1): Numba's and OpenBLAS's threads on the same two cores made a convolution
  four times slower.

BLAS is limited to one thread around each top-level :func:`npuc.execute` and restored
after it, so numpy code outside npuc keeps its own thread count. It needs
``threadpoolctl``; without it BLAS keeps its default.

The precision of float products (:func:`products`) is part of the same context: it is
set around a run (:func:`product_precision`) and seen by every kernel of the run, on
npuc's pool threads too.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import sys
import threading

import numpy as np

from npuc.compiler.executor import placement, scipy_blas

_done = False
_blas = None  # threadpoolctl's controller of the BLAS libraries, or None
_blas_modules = -1  # len(sys.modules) when the BLAS libraries were last found
_depth = 0  # nesting of blas_limit() (function bodies and subgraphs run execute again)
# (pool size, placement on) read once when the outermost run starts and kept until it
# ends: the environment was read again at every pool call, four to six times a node
_fixed: tuple[int, bool] | None = None


def configure() -> None:
    """Set Numba's thread count and find the BLAS libraries (once per process)."""
    global _done, _blas
    if _done:
        return
    _done = True
    # before Numba's first compilation or cache load, which would import scipy.linalg
    scipy_blas.load()
    try:
        import numba

        wanted = int(os.environ.get("NPUC_NUM_THREADS", "1"))
        numba.set_num_threads(max(1, min(wanted, numba.config.NUMBA_NUM_THREADS)))
    except Exception:  # numba's thread pool is optional for correctness
        pass
    if blas_threads() > 0:
        try:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController().select(user_api="blas")
        except Exception:  # without threadpoolctl BLAS keeps its own default
            _blas = None


def blas_threads() -> int:
    """The BLAS thread count npuc asks for while it runs (0: leave BLAS alone)."""
    return 0 if _setting() == 0 else 1


def compute_threads() -> int:
    """The size of npuc's own pool (:func:`parallel`); during a run, as read when it
    started."""
    if _fixed is not None:
        return _fixed[0]
    return _read_threads()


def _read_threads() -> int:
    n = _setting()
    if n is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
    return max(1, n)


def _setting() -> int | None:
    setting = os.environ.get("NPUC_BLAS_THREADS")
    if setting is None:
        return None
    try:
        return max(0, int(setting))
    except ValueError:
        return 1


PRODUCTS = ("float64", "float32")
_products: contextvars.ContextVar[str] = contextvars.ContextVar("npuc_products",
                                                               default="float64")


def products() -> str:
    """How the running execution multiplies floats: ``"float64"`` (the IR's definition,
    the default) or ``"float32"`` (see ``kernels/accumulate.py``)."""
    return _products.get()


@contextlib.contextmanager
def product_precision(mode: str):
    """Run the enclosed kernels with float products of precision ``mode`` (one of
    :data:`PRODUCTS`), then restore the previous one."""
    if mode not in PRODUCTS:
        raise ValueError(f"products must be one of {', '.join(PRODUCTS)}, not {mode!r}")
    token = _products.set(mode)
    try:
        yield
    finally:
        _products.reset(token)


def block(count: int) -> int:
    """How many of ``count`` independent items (channels) one task of :func:`parallel`
    takes: about four tasks per thread."""
    return max(1, -(-count // (4 * compute_threads())))


def by_rows(fn, count: int, min_rows: int = 1) -> None:
    """``fn(start, stop)`` over ``count`` independent rows, in blocks of at least
    ``min_rows`` on npuc's pool (:func:`parallel`). For kernels whose numbers for a row
    do not depend on the block it is in, so the thread count changes no bit."""
    step = max(1, min_rows, block(count))
    parallel(lambda i: fn(i * step, min(count, (i + 1) * step)), -(-count // step))


ELEMENTS = 1 << 16  # elements of one block of an elementwise pass (below this: inline)


def by_elements(fn, out, *arrays) -> None:
    """``fn(*arrays, out=out)`` (a numpy ufunc, or any function of that form that releases
    the GIL) computed in blocks of at least :data:`ELEMENTS` on npuc's pool. Every array
    is C-contiguous with ``out``'s shape, or a scalar; each element depends on itself
    alone, so the thread count changes no bit. A 0-d array is one element, not a scalar."""
    flat = [(a.reshape(-1), True) if isinstance(a, np.ndarray) else (a, False) for a in arrays]
    dest = out.reshape(-1)

    def block(start, stop):
        fn(*(a[start:stop] if whole else a for a, whole in flat), out=dest[start:stop])

    by_rows(block, dest.size, ELEMENTS)


_pool = None
_pool_key = None  # (process id, size): a forked child or a new size makes a new pool


def parallel(fn, count: int) -> None:
    """``fn(i)`` for ``i`` in ``range(count)``, on npuc's pool of :func:`compute_threads`
    threads, the calling thread one of them (inline when that is one, or for one item).
    The first exception is raised after every item ended. ``fn`` must release the GIL
    for most of its time (numpy's products and casts, ``nogil`` Numba functions).
    While the pool runs one call's items, another call (a kernel run inside an item, or
    a second thread of the user's) runs its items inline: it can never wait for items
    queued behind its own."""
    size = compute_threads()
    if min(size, count) <= 1:
        for i in range(count):
            fn(i)
        return
    _the_pool(size).run(fn, count)


def _the_pool(size: int | None = None) -> _Pool:
    """The pool of ``size`` threads, by default :func:`compute_threads` (a new one in a
    forked child, or after the size changed)."""
    global _pool, _pool_key
    key = (os.getpid(), compute_threads() if size is None else size)
    if _pool_key != key:
        if _pool is not None and _pool_key[0] == key[0]:
            _pool.close()
        _pool = _Pool(key[1])
        _pool_key = key
    return _pool


class _Job:
    """One call's items: every thread of the pool takes the next index until none is
    left (a slowed thread leaves its share to the others)."""

    __slots__ = ("fn", "count", "next", "left", "lock", "done", "error", "context")

    def __init__(self, fn, count: int):
        self.fn, self.count = fn, count
        self.next = itertools.count()  # atomic under the GIL: each index is taken once
        self.left = count
        self.lock = threading.Lock()
        self.done = threading.Lock()  # held until the last item ended
        self.done.acquire()
        self.error: BaseException | None = None
        # the pool's threads run items in copies of the caller's context (one context
        # cannot be entered by two threads at once): the kernels see the run's product
        # precision
        self.context = contextvars.copy_context()

    def work(self) -> None:
        finished = 0
        for i in self.next:
            if i >= self.count:
                break
            try:
                self.fn(i)
            except BaseException as e:  # raised by the caller once every item ended
                if self.error is None:
                    self.error = e
            finished += 1
        if finished:
            with self.lock:
                self.left -= finished
                if self.left == 0:
                    self.done.release()


class _Pool:
    """``size - 1`` threads that sleep (never spin) until a call hands them items; the
    calling thread works on the same items meanwhile, so a call costs no hand-off when
    the others are slow to wake (tens of microseconds where ``concurrent.futures`` took
    hundreds under load).

    A call costs what its Python costs, and it runs cold (after a kernel, or a wait): a
    thread waits on a lock of its own (its gate), which the call releases, and the caller
    on a lock the last item releases. ``threading.Condition`` and ``Event``, written in
    Python over such locks, took about 50 microseconds of the 85 that MobileNetV2's
    calls of the pool cost before their first item started (52 calls a run)."""

    def __init__(self, size: int):
        self.job: _Job | None = None
        self.closed = False
        self.busy = threading.Lock()
        self.tids: list[int] = []  # the threads' native ids (placement.keep_off_caller)
        self.gates = [threading.Lock() for _ in range(size - 1)]  # held: nothing to do
        for gate in self.gates:
            gate.acquire()
        started = threading.Barrier(size)
        try:
            for k, gate in enumerate(self.gates):
                threading.Thread(target=self._serve, args=(started, gate), name=f"npuc-{k}",
                                 daemon=True).start()
        except BaseException:  # (no thread left waiting for the others)
            self.close()
            started.abort()
            raise
        started.wait()

    def _serve(self, started, gate) -> None:
        with self.busy:  # (not yet running calls: the list is the pool's alone)
            self.tids.append(threading.get_native_id())
        try:
            started.wait()
        except threading.BrokenBarrierError:
            return
        while True:
            gate.acquire()  # a call released it: its job, or a later one, or closing
            if self.closed:
                return
            job = self.job
            if job is not None:  # (a job whose items are all taken returns at once)
                job.context.copy().run(job.work)

    def run(self, fn, count: int) -> None:
        if not self.busy.acquire(blocking=False):  # nested, or a second user thread
            for i in range(count):
                fn(i)
            return
        try:
            job = _Job(fn, count)
            # wherever the caller is now
            placement.keep_off_caller(self.tids, None if _fixed is None else _fixed[1])
            self.job = job
            for gate in self.gates:
                if gate.locked():  # (else its thread has yet to wake for an earlier
                    gate.release()  # call: it takes this job then)
            job.work()
            job.done.acquire()
        finally:
            self.busy.release()
        if job.error is not None:
            raise job.error

    def close(self) -> None:
        self.closed = True
        for gate in self.gates:
            try:
                gate.release()
            except RuntimeError:  # (released already: its thread sees ``closed``)
                pass


@contextlib.contextmanager
def blas_limit():
    """Limit BLAS to :func:`blas_threads` threads for the outermost run, then restore."""
    global _depth, _blas, _blas_modules, _fixed
    configure()
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    limiter = None
    if _blas is not None:
        # a BLAS library loaded since the last run (scipy's, onnxruntime's) is limited
        # too; a library comes with an import, and a scan of the process's libraries
        # costs about a millisecond (a fifteenth of MobileNetV2's run in onnxruntime), so
        # it is scanned again only when modules were imported since
        if len(sys.modules) != _blas_modules:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController().select(user_api="blas")
            _blas_modules = len(sys.modules)
        limiter = _blas.limit(limits=blas_threads())
    _fixed = (_read_threads(), placement.enabled())
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        _fixed = None
        if limiter is not None:
            limiter.restore_original_limits()

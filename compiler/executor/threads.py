"""How many threads npuc's kernels use, decided once per process.

Two thread pools can run an npuc kernel: Numba's (npuc's own loops) and the BLAS library
behind numpy (matrix products, hence convolutions and transformers).

- Numba runs single-threaded unless ``NPUC_NUM_THREADS`` asks otherwise: on a small
  machine Numba's and OpenBLAS's threads compete for the same cores, and a kernel that
  mixed both ran four times slower.
- BLAS uses every core while npuc executes a graph, except when the machine is already
  busy (its one-minute load average is at least the number of cores): then one thread.
  ``NPUC_BLAS_THREADS=N`` sets it (``0`` leaves BLAS alone). OpenBLAS's threads wait for
  each other by spinning; when another busy process holds one of the cores, every matrix
  product waits for a descheduled thread. Measured in the same runs (2 cores; onnxruntime
  with 2 threads alongside):

  milliseconds, best of 4 (median)   1 BLAS thread  2 BLAS threads  onnxruntime
  ResNet-50, one busy neighbour      270 (287)      612 (1057)      242 (286)
  BERT-base, one busy neighbour      414 (512)      972 (2477)      499 (533)
  ResNet-50, quiet machine           119 (122)       71 (72)         39 (39)
  BERT-base, quiet machine           284 (288)      164 (165)       120 (122)

  Two threads win by 1.7x on a quiet machine and lose by 2-5x on a busy one, so the
  choice follows the load at the first run in the process.

The BLAS limit is set around each top-level :func:`npuc.execute` and restored after it,
so numpy code outside npuc keeps its own thread count. It needs ``threadpoolctl``; without
it BLAS keeps its default.
"""

from __future__ import annotations

import contextlib
import os

_done = False
_blas = None  # threadpoolctl's controller of the BLAS libraries, or None
_depth = 0  # nesting of blas_limit() (function bodies and subgraphs run execute again)


def configure() -> None:
    """Set Numba's thread count and find the BLAS libraries (once per process)."""
    global _done, _blas
    if _done:
        return
    _done = True
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


_chosen: int | None = None


def blas_threads() -> int:
    """The BLAS thread count npuc asks for while it runs (0: leave BLAS alone)."""
    global _chosen
    setting = os.environ.get("NPUC_BLAS_THREADS")
    if setting is not None:
        try:
            return max(0, int(setting))
        except ValueError:
            return 1
    if _chosen is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
        try:
            busy = os.getloadavg()[0] >= cores
        except OSError:  # no load average on this system
            busy = False
        _chosen = 1 if busy else cores
    return _chosen


@contextlib.contextmanager
def blas_limit():
    """Limit BLAS to :func:`blas_threads` threads for the outermost run, then restore."""
    global _depth, _blas
    configure()
    if _blas is None or _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    # a BLAS library loaded since the last run (scipy's, onnxruntime's) is limited too
    from threadpoolctl import ThreadpoolController

    _blas = ThreadpoolController().select(user_api="blas")
    limiter = _blas.limit(limits=blas_threads())
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        limiter.restore_original_limits()

"""Which cores npuc's pool threads may run on: any but the one their caller is on.

On a virtual machine that had been idle for a few tens of milliseconds, Linux woke the
pool thread of a run on the core of the thread that woke it (it does not pick a virtual
CPU that the hypervisor has descheduled, and an idle one is descheduled), and the two
threads then took turns on that one core while the other idled: MobileNetV2 counted 20
involuntary context switches per run after a pause of 0.1 s, none without the pause.
A run that follows a pause is what a served request is, and what the benchmark's
interleaved runs are. So each call of the pool lets its threads run anywhere but on
the core the caller is on at that moment; the caller itself stays free to move.

At first this was done once per run, at its start. But a caller that waits for the
pool's last item is woken by the thread that finished it, and Linux may wake it on that
thread's core: the caller then moved onto the pool's core, and the two took turns there
for the rest of the run (MobileNetV2 at batch 2 after 0.1 s pauses: 30 involuntary
context switches per run). Placed again at every call (a ``sched_getcpu`` and, when the
caller has moved, one ``sched_setaffinity``), they stay apart. Measured on 2 cores
(float32 products, medians of 12 runs, each mode in turn in one process, ms):

                                       threads free   kept off at the   kept off at
                                                      run's start       every call
    MobileNetV2 b2, 0.1 s pause            58.9          44.6
    MobileNetV2 b2, no pause               47.3          46.0
    MobileNetV2 b2, 1 busy neighbour       65.2          58.6
    MobileNetV2 b2, 2 busy neighbours     103.1          97.8
    ResNet-50 b2, 0.1 s pause             223.4         224.4
    ResNet-50 b2, 2 busy neighbours       482.8         469.3

    (a later day, another speed of the machine, medians of 8:)
    MobileNetV2 b2, 0.1 s pause                          67.8              50.4
    ResNet-50 b2, 0.1 s pause                           320.0             316.2
    BERT-base b2, 0.1 s pause                           769.0             767.2

Holding the caller to its core as well gained nothing more and lost 9% with two busy
neighbours. ``NPUC_PIN_THREADS=0`` leaves the pool's threads where the system puts them.
"""

from __future__ import annotations

import ctypes
import os

_getcpu = None  # libc's sched_getcpu, or False where there is none
_masks: dict[tuple, frozenset] = {}  # (process, thread) -> the mask last given to it
_last: tuple | None = None  # (process, core, workers) of the last call that set them all


def enabled() -> bool:
    """Whether the pool keeps its threads off the caller's core (``NPUC_PIN_THREADS``, default
    on)."""
    return os.environ.get("NPUC_PIN_THREADS", "1").strip().lower() not in ("0", "no", "off",
                                                                           "false")


def current_cpu() -> int | None:
    """The core the calling thread is on now, or None where that cannot be known."""
    global _getcpu
    if _getcpu is None:
        try:
            fn = ctypes.CDLL(None).sched_getcpu
            fn.restype, fn.argtypes = ctypes.c_int, []
            _getcpu = fn
        except (OSError, AttributeError):
            _getcpu = False
    if not _getcpu:
        return None
    cpu = _getcpu()
    return cpu if cpu >= 0 else None


def keep_off_caller(workers: list[int], pin: bool | None = None) -> None:
    """Let the pool threads whose native ids are ``workers`` run on every core the caller
    may use except the one it is on (all of them when that is the only one, or when
    disabled: ``pin``, or :func:`enabled` when None)."""
    global _last
    if not workers or not hasattr(os, "sched_setaffinity"):
        return
    cpu = current_cpu() if (enabled() if pin is None else pin) else None
    key = (os.getpid(), cpu, tuple(workers))
    if key == _last:  # the caller has not moved since the last call placed them
        return
    try:
        allowed = frozenset(os.sched_getaffinity(0))
    except OSError:
        return
    mask = allowed - {cpu} if cpu in allowed and len(allowed) > 1 else allowed
    pid = key[0]
    placed = True
    for tid in workers:
        if _masks.get((pid, tid)) == mask:
            continue
        try:
            os.sched_setaffinity(tid, mask)
            _masks[(pid, tid)] = mask
        except OSError:  # a thread that ended, or a mask the system refuses
            _masks.pop((pid, tid), None)
            placed = False
    _last = key if placed else None

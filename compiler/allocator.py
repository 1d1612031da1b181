"""The C allocator's thresholds for an ``npuc`` process.

glibc serves a request above its mmap threshold (128 KB at start) with fresh pages from
the kernel and unmaps them on free, so each new activation of a run of the executor (a
calibration runs the model 8 times and more) faults its pages in again: on the virtual
machines measured, a page fault costs microseconds, and ResNet-50's calibration spent a
second of system time on 180,000 of them. glibc raises the threshold by itself when it
frees a large block, which a process freeing a copy of its weights early happened to do.
Fixing it at 32 MB (glibc's largest automatic value) and keeping up to 256 MB of freed
memory at the heap's top makes the reuse deliberate: freed activations are reused without
faults. Larger blocks (weights, the weight blob) are still mapped and given back.

The CLI sets the thresholds at start; :func:`npuc.execute` sets them on its first run in a
process (``NPUC_REUSE_MEMORY=0`` keeps the process's own), so a library user who runs a
model again and again gets the same reuse.
"""

from __future__ import annotations

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20


def reuse_freed_memory() -> bool:
    """Set the allocator's thresholds (see the module docstring); False where the C
    library is not glibc (nothing is changed there)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
        ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        return ok and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):  # no mallopt: not glibc
        return False

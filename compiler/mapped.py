"""Large constants read piece by piece, and their pages given back once read.

A model's weights are memory-mapped from its files (see
:mod:`npuc.compiler.frontend.onnx_import`): only the pages a pass reads come into memory.
A pass that reads every weight once (a finite check, rounding, the weight blob) goes
through them in pieces of at most :data:`PIECE_BYTES` and calls :func:`release` when it
is done with one, so that a model larger than the machine's memory passes through it.
:func:`is_hole` tells a piece that lies in a hole of a sparse file, which reads as zeros
without being read.
"""

from __future__ import annotations

import mmap
import os

import numpy as np

PIECE_BYTES = 64 << 20
FRESH_BYTES = 4 << 20  # from this size fresh() maps an array's pages at once


def row_pieces(a: np.ndarray, piece_bytes: int | None = None):
    """``(lo, hi)`` runs of ``a``'s first axis of at most ``piece_bytes`` (default
    :data:`PIECE_BYTES`) each, one row at least; one run ``(0, 1)`` for a scalar."""
    piece_bytes = piece_bytes or PIECE_BYTES
    if a.ndim == 0:
        yield 0, 1
        return
    row = max(1, a[:1].nbytes)
    step = max(1, piece_bytes // row)
    for lo in range(0, a.shape[0], step):
        yield lo, min(a.shape[0], lo + step)


def _mapping(a: np.ndarray):
    """``(mmap, memmap)`` that ``a``'s data lies in, or ``(None, None)``."""
    mm = owner = None
    base = a
    while base is not None:
        if isinstance(base, np.memmap) and owner is None:
            owner = base
        if isinstance(base, mmap.mmap):
            mm = base
            break
        base = getattr(base, "base", None)
    return mm, owner


def _span(a: np.ndarray, mm) -> tuple[int, int]:
    """Byte offsets ``[lo, hi)`` within ``mm`` of the memory ``a`` spans."""
    start = np.frombuffer(mm, np.uint8, count=0).ctypes.data if len(mm) else 0
    if a.size == 0:
        return 0, 0
    lo = hi = a.ctypes.data - start
    for n, s in zip(a.shape, a.strides):
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    return lo, hi + a.itemsize


def release(a: np.ndarray) -> None:
    """Give back the pages of a mapped array (no-op for an array in memory): they are read
    from the file again if used again. Only for arrays never written in place."""
    mm, owner = _mapping(a)
    if mm is None or owner is None or not len(mm):
        return  # not a file's map: memory (fresh()'s anonymous map) would be lost
    lo, hi = _span(a, mm)
    page = mmap.PAGESIZE
    lo -= lo % page
    hi = min(len(mm), -(-hi // page) * page)
    if hi > lo:
        mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def fresh(shape, dtype) -> np.ndarray:
    """An uninitialised array about to be written whole (a weight rounded piece by piece):
    a large one gets its pages mapped at once (``MAP_POPULATE``), many times cheaper than
    faulting each page in as it is first written, which dominates making gigabytes of
    rounded weights on a virtual machine. Freed as any array, when no longer referenced."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    flags = getattr(mmap, "MAP_POPULATE", 0)
    if nbytes < FRESH_BYTES or not flags:
        return np.empty(shape, dtype)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flags)
    return np.frombuffer(buf, dtype).reshape(shape)


def is_hole(a: np.ndarray) -> bool:
    """True when all of ``a`` lies in a hole of the sparse file it is mapped from (it
    reads as zeros); False when it is not mapped or may hold data."""
    mm, owner = _mapping(a)
    if mm is None or owner is None or not getattr(owner, "filename", None) or a.size == 0:
        return False
    lo, hi = _span(a, mm)
    first = owner.offset - owner.offset % mmap.ALLOCATIONGRANULARITY  # the map's file offset
    try:
        fd = os.open(owner.filename, os.O_RDONLY)
    except OSError:
        return False
    try:
        data = os.lseek(fd, first + lo, os.SEEK_DATA)
    except OSError as e:  # ENXIO: no data after the offset
        return e.errno == 6
    finally:
        os.close(fd)
    return data >= first + hi


def is_zero(a: np.ndarray) -> bool:
    """True when every element of ``a`` is zero (a hole is not read to know it)."""
    return is_hole(a) or not np.any(a)


def each_piece(a: np.ndarray, fn, release_after: bool = True) -> None:
    """Call ``fn(lo, hi, piece)`` for each run of ``a``'s first axis; give each piece's
    pages back after it (``release_after``)."""
    for lo, hi in row_pieces(a):
        piece = a if a.ndim == 0 else a[lo:hi]
        fn(lo, hi, piece)
        if release_after:
            release(piece)


def first_nonfinite(a: np.ndarray):
    """``(index, is_nan, count, nans)`` of the first NaN or infinity in float array ``a``:
    its index, whether it is a NaN, how many non-finite values and NaNs there are; None
    when all are finite. Read piece by piece (holes skipped), pages given back."""
    found = None
    count = nans = 0
    for lo, hi in row_pieces(a):
        piece = a if a.ndim == 0 else a[lo:hi]
        if is_hole(piece):
            continue
        values = piece if piece.dtype.kind == "f" else piece.astype(np.float32)
        bad = ~np.isfinite(values)
        n = int(bad.sum())
        if n and found is None:
            at = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
            index = tuple(int(i) for i in at)
            if a.ndim:
                index = (index[0] + lo,) + index[1:]
            found = (index, bool(np.isnan(values[at])))
        count += n
        nans += int(np.isnan(values).sum()) if n else 0
        del values, bad
        release(piece)
    return None if found is None else (found[0], found[1], count, nans)

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


def row_pieces(a: np.ndarray, piece_bytes: int | None = None):
    """``(lo, hi)`` runs of ``a``'s first axis of at most ``piece_bytes`` (default
    :data:`PIECE_BYTES`) each, one row at least; one run ``(0, 1)`` for a scalar."""
    piece_bytes = piece_bytes or PIECE_BYTES
    if a.ndim == 0:
        yield 0, 1
        return
    yield from _runs(a.shape[0], a[:1].nbytes, piece_bytes)


def _runs(rows: int, row_bytes: int, piece_bytes: int):
    step = max(1, piece_bytes // max(1, row_bytes))
    for lo in range(0, rows, step):
        yield lo, min(rows, lo + step)


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
        return  # not a file's map: memory (an anonymous map's pages) would be lost
    lo, hi = _span(a, mm)
    page = mmap.PAGESIZE
    lo -= lo % page
    hi = min(len(mm), -(-hi // page) * page)
    if hi > lo:
        mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def release_inputs(node, _results=None) -> None:
    """Give back the pages of ``node``'s mapped constant inputs: an executor's
    ``observe`` for runs over a whole model (calibration), so that the model's weights
    are not all resident at the end of a run but one node's at a time."""
    for v in node.inputs:
        c = getattr(v, "const", None) if v is not None else None
        if isinstance(c, np.ndarray):
            release(c)


SPILL_BYTES = 16 << 20  # from this size filled() keeps an array in a temporary file


def filled(shape, dtype, fill) -> np.ndarray:
    """A new array of ``shape`` and ``dtype`` whose rows ``[lo, hi)`` ``fill(lo, hi, out)``
    writes into ``out`` (that run of rows, uninitialised), run by run of
    :func:`row_pieces`. One of at least :data:`SPILL_BYTES` is written to an unlinked
    temporary file as it is made and returned as a read-only map of it: its pages are the
    file's (given back by :func:`release`, reclaimable by the system), not this
    process's memory, so that the weights a compile makes (rounded to bf16, quantized to
    fp8) are never all in memory beside the model's own. A smaller one is an ordinary
    array. The values are the same either way."""
    import tempfile

    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < SPILL_BYTES or not shape:
        out = np.empty(shape, dtype)
        for lo, hi in row_pieces(out):
            fill(lo, hi, out if out.ndim == 0 else out[lo:hi])
        return out
    row = nbytes // shape[0]  # not 0: the array is large
    scratch = None
    with tempfile.TemporaryFile() as f:
        for lo, hi in _runs(shape[0], row, PIECE_BYTES):
            if scratch is None or len(scratch) < hi - lo:
                scratch = np.empty((hi - lo,) + shape[1:], dtype)
            part = scratch[:hi - lo]
            fill(lo, hi, part)
            f.write(memoryview(part.reshape(-1).view(np.uint8)))
        f.flush()
        return np.memmap(f, dtype=dtype, mode="r", shape=shape)


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
        # the common case in two fast reductions: a NaN makes the minimum NaN, and an
        # infinity is the minimum or the maximum
        if not values.size or (np.isfinite(values.min()) and np.isfinite(values.max())):
            release(piece)
            continue
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

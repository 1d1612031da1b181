"""A weight blob kept in a file: written once, piece by piece, and read through a map.

:func:`npuc.compiler.lower.weights.weight_blob` writes the blob to a temporary file as it
converts each weight; a blob of up to :data:`IN_MEMORY_BYTES` is then read back as
``bytes``, a larger one stays in its file as a :class:`Blob`: a read-only map of the file
(usable wherever bytes are read: ``len``, slices, ``numpy.frombuffer``, hashing) whose
:meth:`Blob.write_to` copies it into the artifact without holding it in memory, leaving
the file's holes (runs of zeros never written) as holes.

A blob's digest (a program's ``weights_sha256``) is a SHA-256 hash list,
:func:`digest`: the SHA-256 of the SHA-256 digests of its :data:`CHUNK_BYTES` chunks in
order. It identifies the bytes as well as a plain SHA-256 does, and a chunk that lies in a
hole of the blob's file is known to be zeros, so its digest is a constant and it is never
read: the blob of a model whose weights are a sparse file of zeros (the zoo's 70B) is
hashed in the time of its few written bytes, not of its tens of gigabytes.
"""

from __future__ import annotations

import hashlib
import mmap
import os

# Reading a blob back costs a copy and a page fault per 4 KB page (BERT-base's 219 MB:
# 55,000 faults, about half a second): above this size it stays in its file.
IN_MEMORY_BYTES = 64 << 20
COPY_BYTES = 16 << 20
CHUNK_BYTES = 1 << 20
_ZERO_CHUNK = hashlib.sha256(bytes(CHUNK_BYTES)).digest()


def digest(data) -> str:
    """The hash-list digest (module docstring) of bytes-like ``data``; a :class:`Blob`
    gives its own, computed from its file without reading its holes."""
    known = getattr(data, "sha256", None)
    if isinstance(known, str):
        return known
    view = memoryview(data).cast("B")
    top = hashlib.sha256()
    for lo in range(0, len(view), CHUNK_BYTES):
        top.update(hashlib.sha256(view[lo:lo + CHUNK_BYTES]).digest())
    return top.hexdigest()


def file_digest(fd: int, size: int) -> str:
    """:func:`digest` of the first ``size`` bytes of the file ``fd``: chunks that lie in
    a hole are zeros and are not read."""
    top, pos = hashlib.sha256(), 0
    data = _next(fd, 0, os.SEEK_DATA, size)
    while pos < size:
        n = min(CHUNK_BYTES, size - pos)
        if data >= pos + n:  # the whole chunk lies in a hole
            top.update(_ZERO_CHUNK if n == CHUNK_BYTES else
                       hashlib.sha256(bytes(n)).digest())
        else:
            top.update(hashlib.sha256(os.pread(fd, n, pos)).digest())
        pos += n
        if data < pos and pos < size:  # the next data at or after pos
            data = _next(fd, pos, os.SEEK_DATA, size)
    return top.hexdigest()


class Digester:
    """:func:`digest` of a blob written front to back: data given at increasing offsets,
    the gaps between them zeros (hashed as such, a whole chunk of zeros not hashed at
    all), so that a blob written to a file need not be read back to be hashed."""

    def __init__(self):
        self.top, self.chunk, self.pos = hashlib.sha256(), bytearray(), 0

    def add(self, at: int, data) -> None:
        """``data`` (bytes-like) at offset ``at``, at or after the end of what was given."""
        if at < self.pos:
            raise ValueError(f"data at {at} before the end of the blob so far ({self.pos})")
        self._zeros(at - self.pos)
        view = memoryview(data).cast("B")
        while len(view):
            if not self.chunk and len(view) >= CHUNK_BYTES:
                self.top.update(hashlib.sha256(view[:CHUNK_BYTES]).digest())
                take = CHUNK_BYTES
            else:
                take = min(len(view), CHUNK_BYTES - len(self.chunk))
                self.chunk += view[:take]
                self._flush()
            view = view[take:]
            self.pos += take

    def hexdigest(self, size: int) -> str:
        """The digest of the blob of ``size`` bytes (zeros after the last data)."""
        self._zeros(size - self.pos)
        if self.chunk:
            self.top.update(hashlib.sha256(self.chunk).digest())
            self.chunk = bytearray()
        return self.top.hexdigest()

    def _zeros(self, n: int) -> None:
        if n > 0 and self.chunk:
            take = min(n, CHUNK_BYTES - len(self.chunk))
            self.chunk += bytes(take)
            self._flush()
            n -= take
            self.pos += take
        whole = n // CHUNK_BYTES
        for _ in range(whole):
            self.top.update(_ZERO_CHUNK)
        self.pos += whole * CHUNK_BYTES
        if n % CHUNK_BYTES:
            self.chunk += bytes(n % CHUNK_BYTES)
            self.pos += n % CHUNK_BYTES

    def _flush(self) -> None:
        if len(self.chunk) == CHUNK_BYTES:
            self.top.update(hashlib.sha256(self.chunk).digest())
            self.chunk = bytearray()


class Blob(mmap.mmap):
    """A read-only map of a weight blob's file; ``sha256``: its digest."""

    def __new__(cls, file, size: int, sha256: str):
        self = super().__new__(cls, file.fileno(), size, access=mmap.ACCESS_READ)
        self.file, self.sha256 = file, sha256
        return self

    def __eq__(self, other) -> bool:
        if isinstance(other, Blob) and other.sha256 == self.sha256:
            return len(other) == len(self)
        try:
            return len(memoryview(other)) == len(self) and memoryview(other) == memoryview(self)
        except TypeError:
            return NotImplemented

    __hash__ = None

    def write_to(self, out, at: int = 0) -> None:
        """Copy the blob into the binary file ``out`` at offset ``at`` (the file is cut
        at its end), holes kept as holes."""
        fd, size, pos = self.file.fileno(), len(self), 0
        while pos < size:
            start = _next(fd, pos, os.SEEK_DATA, size)
            end = _next(fd, start, os.SEEK_HOLE, size) if start < size else size
            _copy_range(fd, out, start, end, at)
            pos = end
        out.truncate(at + size)


def _copy_range(fd: int, out, start: int, end: int, at: int) -> None:
    """Copy bytes ``[start, end)`` of the file ``fd`` to ``out`` at ``at + start``: in
    the kernel (no pass through this process's memory) where the system can, else read
    and written in pieces of :data:`COPY_BYTES`."""
    out.flush()
    lo = start
    try:
        while lo < end:
            n = os.copy_file_range(fd, out.fileno(), min(COPY_BYTES, end - lo), lo, at + lo)
            if n <= 0:
                break
            lo += n
    except (OSError, AttributeError):
        pass  # not supported here (a file system or kernel without it): copied below
    for piece in range(lo, end, COPY_BYTES):
        out.seek(at + piece)
        out.write(os.pread(fd, min(COPY_BYTES, end - piece), piece))


def _next(fd: int, pos: int, whence: int, size: int) -> int:
    """The next data (hole) offset at or after ``pos``; ``size`` when there is none, and
    every offset is data where the file system cannot tell."""
    try:
        return min(size, os.lseek(fd, pos, whence))
    except OSError as e:
        if e.errno == 6:  # ENXIO: no data after pos
            return size
        return pos if whence == os.SEEK_DATA else size


def finish(file, size: int, sha256: str, in_memory: int = IN_MEMORY_BYTES):
    """The blob written to ``file``: ``bytes`` when at most ``in_memory`` bytes (or
    empty), else a :class:`Blob`."""
    file.truncate(size)
    file.flush()
    if size <= in_memory or size == 0:
        file.seek(0)
        data = file.read()
        file.close()
        return data
    return Blob(file, size, sha256)


class Concat:
    """Blobs appended one after the other as they come (each written to a file at once,
    holes kept), so that none is held after it is added; :meth:`finish` gives ``bytes``
    when small, else a :class:`Blob` (its ``sha256`` None: each part has its own)."""

    def __init__(self):
        import tempfile

        self.file = tempfile.TemporaryFile()
        self.size = 0

    def add(self, blob) -> None:
        """Append ``blob`` (bytes or a :class:`Blob`)."""
        if isinstance(blob, Blob):
            blob.write_to(self.file, self.size)
        elif blob.count(0) < len(blob):
            self.file.seek(self.size)
            self.file.write(blob)
        self.size += len(blob)

    def finish(self):
        self.file.truncate(self.size)
        self.file.flush()
        if self.size <= IN_MEMORY_BYTES:
            self.file.seek(0)
            data = self.file.read()
            self.file.close()
            return data
        return Blob(self.file, self.size, None)

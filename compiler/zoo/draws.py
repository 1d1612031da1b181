"""The zoo's random weights kept on disk, so that compiling a zoo model twice draws once.

A zoo model's weights are a pure function of its seed (its name), the sequence of draws
its builder asks for (method, shape and parameters, in order) and numpy's generator.
Drawing them is most of building a large one (BERT-base: 110 M normal samples, about a
second). A compile of ``zoo:NAME`` records the draws in a file of the user's cache
(``$NPUC_ZOO_CACHE/draws/``, by default ``~/.cache/npuc/zoo/draws/``); the next build of
the same name and options maps that file and hands its arrays out instead of drawing,
each against the request recorded with it. A request that differs (the builder's code
changed), another numpy version, a short or damaged file: the model is drawn again and
the file rewritten. The model is byte-identical either way.

Only models with at least :data:`MIN_BYTES` of draws are kept (the small ones draw
faster than a file is mapped). ``NPUC_ZOO_DRAWS=0`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np

MIN_BYTES = 16 << 20
ENV = "NPUC_ZOO_DRAWS"
MAGIC = b"NPUCDRAW1\n"
ALIGN = 64  # each array starts on a multiple of this many bytes


class Mismatch(Exception):
    """A replayed request is not the recorded one: the file is from other code."""


class Draws:
    """The draws of one build: replayed from a file when it has them, else recorded.

    A recording writes each draw to a temporary file as it is made (a builder may change
    an array in place afterwards), from the first :data:`MIN_BYTES` on; :meth:`finish`
    puts it in place."""

    def __init__(self, path: str | None, header: dict, replay: list | None = None):
        self.path = path
        self.header = header
        self._replay = replay  # [(request, array)] from the file, or None: recording
        self._count = 0
        self._entries: list[dict] = []  # recorded: request, dtype, offset
        self._pending: list[bytes] = []  # recorded data not yet in the file
        self._bytes = 0
        self._file = None  # the temporary the recording goes to, and its name
        self._tmp = None

    def take(self, request: list, draw) -> np.ndarray:
        """The array for ``request`` (``[method, shape, *parameters]``): the file's next
        one, or ``draw()`` (recorded to be saved)."""
        i = self._count
        self._count += 1
        if self._replay is not None:
            if i >= len(self._replay) or self._replay[i][0] != request:
                raise Mismatch(request)
            return self._replay[i][1]
        array = draw()
        if self.path is not None:
            self._record(request, np.ascontiguousarray(array))
        return array

    def _record(self, request: list, array: np.ndarray) -> None:
        offset = -(-self._bytes // ALIGN) * ALIGN
        self._entries.append({"request": request, "dtype": array.dtype.str, "offset": offset})
        self._pending.append(b"\0" * (offset - self._bytes))
        self._pending.append(array.tobytes() if self._file is None else array.data)
        self._bytes = offset + array.nbytes
        if self._file is None and self._bytes >= MIN_BYTES:
            try:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                fd, self._tmp = tempfile.mkstemp(prefix=".draws-", dir=os.path.dirname(self.path))
                self._file = os.fdopen(fd, "wb")
            except OSError:  # no cache to write to: stop recording
                self.path = None
                return
        if self._file is not None:
            self._flush()

    def _flush(self) -> None:
        try:
            for piece in self._pending:
                self._file.write(piece)
        except OSError:
            self.abandon()
        self._pending.clear()

    def finish(self) -> None:
        """Check a replay used every recorded draw; put a recording worth keeping in
        place (with its index after the data)."""
        if self._replay is not None:
            if self._count != len(self._replay):
                raise Mismatch("fewer draws than recorded")
            return
        if self._file is None:
            return
        try:
            text = json.dumps({**self.header, "draws": self._entries,
                               "bytes": self._bytes}).encode()
            self._file.write(text + len(text).to_bytes(8, "little") + MAGIC)
            self._file.close()
            os.replace(self._tmp, self.path)
            self._file = None
        except OSError:  # a full cache costs the time only
            self.abandon()

    def abandon(self) -> None:
        """Drop an unfinished recording's temporary."""
        if self._file is not None:
            try:
                self._file.close()
                os.unlink(self._tmp)
            except OSError:
                pass
        self._file = self.path = None


def open_draws(name: str, options: dict, seed: int) -> Draws:
    """The draws of zoo model ``name`` built with ``options``: a replay of its cache file
    when there is a valid one, else a recording (to be saved when the cache is on)."""
    header = {"name": name, "options": {k: repr(v) for k, v in sorted(options.items())},
              "seed": seed, "numpy": np.__version__, "generator": "PCG64"}
    if os.environ.get(ENV, "1") == "0":
        return Draws(None, header)
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:20]
    path = os.path.join(cache_root(), "draws", f"{name}-{digest}.bin")
    try:
        replay = _load(path, header)
    except Exception:  # a missing, short or foreign file: draw again
        replay = None
    return Draws(path, header, replay)


def cache_root() -> str:
    """The zoo's cache folder: ``$NPUC_ZOO_CACHE``, else ``~/.cache/npuc/zoo``."""
    return os.environ.get("NPUC_ZOO_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "npuc", "zoo")


def _load(path: str, header: dict) -> list | None:
    """``[(request, array)]`` mapped from ``path`` (copy on write), or None when it is
    missing or not this build's."""
    if not os.path.isfile(path):
        return None
    size = os.path.getsize(path)
    tail = 8 + len(MAGIC)
    with open(path, "rb") as f:
        f.seek(size - tail)
        end = f.read(tail)
        if end[8:] != MAGIC:
            return None
        length = int.from_bytes(end[:8], "little")
        f.seek(size - tail - length)
        meta = json.loads(f.read(length))
    if any(meta.get(k) != v for k, v in header.items()) or \
            size != meta["bytes"] + length + tail:
        return None
    data = np.memmap(path, dtype=np.uint8, mode="c", shape=(meta["bytes"],))
    out = []
    for entry in meta["draws"]:
        request, dtype = entry["request"], np.dtype(entry["dtype"])
        shape = tuple(request[1])
        count = int(np.prod(shape, dtype=np.int64))
        lo = entry["offset"]
        array = data[lo:lo + count * dtype.itemsize].view(dtype).reshape(shape)
        out.append((request, array))
    return out

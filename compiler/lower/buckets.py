"""Several programs for one model, one per shape set (buckets), sharing one weight blob.

A model compiled for ``--shape seq=128,512,2048`` is three programs: tiles, memory plans
and folded shape arithmetic differ per shape, the weights do not. :func:`merge_weights`
lays out one blob that holds every program's weights, each distinct tensor once, and
points each program's weight references into it. :func:`manifest` names each program's
shapes, so that a runtime (and npuc's simulator) picks the program that matches its input.

The folder of a bucketed compile holds ``manifest.json``, ``weights.bin`` and, for program
``i``, ``program-i.json``, ``schedule-i.json``, ``summary-i.json``, ``decisions-i.json`` and
``report-i.html``. A single shape set keeps the one-program layout (``program.json``...).
"""

from __future__ import annotations

import copy
import hashlib

from npuc.targets.model import align_up

from .blob import digest as blob_digest

MANIFEST_FORMAT = "npuc-buckets"
MANIFEST_VERSION = 1


def merge_weights(programs: list[dict], blobs: list) -> tuple[list[dict], object]:
    """Programs rewritten to read one shared blob, and that blob (each distinct weight
    content stored once, in the order the programs first use them). Weights are found by
    content, not by name: the prefill and decode forms of a decoder are two exports, and
    an exporter numbers its constants (``val_43``, ``onnx::MatMul_1300``) per export.

    The shared blob is written to a file as it is laid out, each weight hashed and copied
    from its program's blob without a copy in memory (a file-backed blob's pages given
    back after each weight): ``bytes`` when small, else a file-backed
    :class:`~.blob.Blob`, as :func:`~.weights.weight_blob` gives."""
    import tempfile

    from .blob import IN_MEMORY_BYTES, Digester, finish

    out_file = tempfile.TemporaryFile()
    hasher = Digester()  # the shared blob's digest, as it is written in order
    size = 0
    placed: dict[tuple[int, str], int] = {}
    out = []
    for program, blob in zip(programs, blobs):
        program = copy.deepcopy(program)
        memory = program["memory"]
        align = max(1, int(memory.get("alignment", 1)))
        moved: dict[str, int] = {}  # tensor -> new offset minus old
        view = memoryview(blob).cast("B")
        for buf in memory["buffers"]:
            if buf["space"] != "weights":
                continue
            data = view[buf["offset"]:buf["offset"] + buf["size"]]
            key = (len(data), hashlib.sha256(data).hexdigest())
            if key not in placed:
                placed[key] = align_up(size, align)
                _write_data(out_file, placed[key], data)
                hasher.add(placed[key], data)
                size = placed[key] + len(data)
            _give_back(blob, buf["offset"], buf["size"])
            moved[buf["name"]] = placed[key] - buf["offset"]
            buf["offset"] = placed[key]
        view.release()
        _retarget(program, moved)
        out.append(program)
    out_file.truncate(size)
    out_file.flush()
    blob = finish(out_file, size, hasher.hexdigest(size), IN_MEMORY_BYTES)
    digest = blob_digest(blob)
    for program in out:
        program["memory"]["weights_bytes"] = len(blob)
        program["memory"]["buffers"].sort(key=lambda b: (b["space"], b["offset"], b["name"]))
        program["weights_sha256"] = digest
    return out, blob


def _write_data(f, at: int, data: memoryview) -> None:
    """Write ``data`` at ``at``, leaving its runs of zeros unwritten (holes of the file)."""
    import numpy as np

    from .blob import COPY_BYTES

    for lo in range(0, len(data), COPY_BYTES):
        piece = data[lo:lo + COPY_BYTES]
        if np.frombuffer(piece, np.uint8).any():
            f.seek(at + lo)
            f.write(piece)


def _give_back(blob, offset: int, size: int) -> None:
    """Release the pages of ``blob[offset:offset + size]`` when ``blob`` maps a file (they
    are read from it again if needed), so that reading every weight does not keep them."""
    import mmap

    if not isinstance(blob, mmap.mmap) or not size:
        return
    lo = offset - offset % mmap.PAGESIZE
    hi = min(len(blob), -(-(offset + size) // mmap.PAGESIZE) * mmap.PAGESIZE)
    if hi > lo:
        blob.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def _retarget(node, moved: dict[str, int]) -> None:
    """Shift every weight reference in a program by its tensor's move."""
    if isinstance(node, dict):
        if node.get("space") == "weights" and node.get("tensor") in moved and \
                isinstance(node.get("offset"), int):
            node["offset"] += moved[node["tensor"]]
        for k, v in node.items():
            if k != "buffers":
                _retarget(v, moved)
    elif isinstance(node, list):
        for v in node:
            _retarget(v, moved)


def input_shapes(program: dict) -> dict[str, list[int]]:
    """The input shapes a program was compiled for, by name."""
    return {name: list(ref["shape"]) for name, ref in program["inputs"].items()}


def manifest(target: str, labels: list[str], programs: list[dict], blob: bytes) -> dict:
    """The manifest of a bucketed compile: each program's shape set and input shapes."""
    return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "target": target,
            "weights": "weights.bin", "weights_sha256": blob_digest(blob),
            "programs": [{"index": i, "shapes": label, "program": f"program-{i}.json",
                          "schedule": f"schedule-{i}.json", "summary": f"summary-{i}.json",
                          "decisions": f"decisions-{i}.json", "report": f"report-{i}.html",
                          "inputs": input_shapes(p),
                          "estimated_latency_s": p.get("estimate", {}).get("seconds")}
                         for i, (label, p) in enumerate(zip(labels, programs))]}


def pick(programs: list[dict], feeds: dict) -> int:
    """The index of the program whose input shapes are those of ``feeds``."""
    from npuc.ir.errors import InputError

    got = {k: list(getattr(v, "shape", ())) for k, v in feeds.items()}
    for i, p in enumerate(programs):
        if all(got.get(name) == shape for name, shape in input_shapes(p).items()):
            return i
    have = "; ".join(", ".join(f"{k} {v}" for k, v in input_shapes(p).items())
                     for p in programs)
    raise InputError(f"no program was compiled for inputs of shapes "
                     f"{', '.join(f'{k} {v}' for k, v in sorted(got.items()))}; the "
                     f"programs take: {have}")

"""One weight blob for several programs: a weight is stored once whatever its name."""

from __future__ import annotations

import numpy as np

from npuc.compiler.lower.buckets import merge_weights


def _program(names_and_data):
    """A program reading each weight once, and its blob."""
    blob, buffers, commands = bytearray(), [], []
    for name, data in names_and_data:
        offset = len(blob)
        blob.extend(data)
        buffers.append({"name": name, "space": "weights", "offset": offset, "size": len(data)})
        commands.append({"op": "dma_load", "src": {"space": "weights", "tensor": name,
                                                   "offset": offset}})
    return {"memory": {"alignment": 1, "buffers": buffers}, "commands": commands}, bytes(blob)


def test_weights_are_shared_by_content_not_by_name():
    w = np.arange(16, dtype=np.float32).tobytes()
    other = np.ones(4, dtype=np.float32).tobytes()
    # two exports of one model name the same matrix differently (val_43, val_40)
    a, blob_a = _program([("val_43", w), ("norm", other)])
    b, blob_b = _program([("bias", other[:8]), ("val_40", w)])
    (pa, pb), blob = merge_weights([a, b], [blob_a, blob_b])
    assert len(blob) == len(w) + len(other) + 8
    where = {c["src"]["tensor"]: c["src"]["offset"] for p in (pa, pb) for c in p["commands"]}
    assert where["val_43"] == where["val_40"]
    for name, data in [("val_43", w), ("norm", other), ("bias", other[:8]), ("val_40", w)]:
        assert blob[where[name]:where[name] + len(data)] == data


def _file_blob(data: bytes):
    import tempfile

    from npuc.compiler.lower import blob as blob_module

    f = tempfile.TemporaryFile()
    f.write(data)
    return blob_module.finish(f, len(data), blob_module.digest(data), in_memory=0)


def test_file_backed_blobs_merge_to_the_same_bytes_and_digest(monkeypatch):
    from npuc.compiler.lower import blob as blob_module

    rng = np.random.default_rng(0)
    w = rng.standard_normal(3000).astype(np.float32).tobytes()
    zeros = bytes(5000)  # written as a hole, read back as zeros
    a, blob_a = _program([("w", w), ("z", zeros), ("n", w[:400])])
    b, blob_b = _program([("n2", w[:400]), ("w2", w), ("t", w[-12:])])
    for p in (a, b):
        p["memory"]["alignment"] = 64
    want_programs, want = merge_weights([a, b], [blob_a, blob_b])
    monkeypatch.setattr(blob_module, "IN_MEMORY_BYTES", 0)
    got_programs, got = merge_weights([a, b], [_file_blob(blob_a), _file_blob(blob_b)])
    assert isinstance(got, blob_module.Blob) and isinstance(want, bytes)
    assert bytes(got) == want and got_programs == want_programs
    assert got.sha256 == blob_module.digest(want) == want_programs[0]["weights_sha256"]

"""Weights read piece by piece and the weight blob streamed to its file."""

import os

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler import mapped
from npuc.compiler.lower import blob as blob_module
from npuc.compiler.quantize.floatq import round_bf16, rounded_weight


def _sparse_file(path, size, data_at=None):
    with open(path, "wb") as f:
        f.truncate(size)
        if data_at is not None:
            f.seek(data_at)
            f.write(np.ones(256, np.float32).tobytes())


def test_holes_of_a_sparse_file_are_known_without_reading(tmp_path):
    path = tmp_path / "w.bin"
    _sparse_file(path, 1 << 24, data_at=1 << 21)
    a = np.memmap(path, np.float32, "c", offset=4096, shape=(1024, 1024)).view(np.ndarray)
    assert mapped.is_hole(a[:256]) and not mapped.is_hole(a) and mapped.is_zero(a[:16])
    assert not mapped.is_hole(np.zeros(4))
    total = float(a.sum())
    mapped.release(a)  # pages given back read again from the file
    assert float(a.sum()) == total == 256.0


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 7), st.integers(0, 279), st.booleans())
def test_first_nonfinite_is_found_in_any_piece(rows, cols, at, nan):
    a = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    at = at % a.size
    a.reshape(-1)[at] = np.nan if nan else np.inf
    old = mapped.PIECE_BYTES
    mapped.PIECE_BYTES = 8  # a few rows a piece
    try:
        index, first_nan, count, nans = mapped.first_nonfinite(a)
    finally:
        mapped.PIECE_BYTES = old
    assert index == tuple(int(i) for i in np.unravel_index(at, a.shape))
    assert (first_nan, count, nans) == (nan, 1, int(nan))


def test_rounding_keeps_an_exact_weight_and_rounds_piece_by_piece(monkeypatch):
    monkeypatch.setattr(mapped, "PIECE_BYTES", 64)
    w = np.random.default_rng(0).standard_normal((50, 9)).astype(np.float32)
    assert np.array_equal(rounded_weight(w, "bf16"), round_bf16(w))
    exact = round_bf16(w)
    assert rounded_weight(exact, "bf16") is exact
    assert np.array_equal(rounded_weight(w, "fp16"), w.astype(np.float16).astype(np.float32))


def _model(path, weight):
    inits = [numpy_helper.from_array(weight, "w")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, weight.shape[1]])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


@pytest.mark.parametrize("zeros", [False, True])
def test_a_file_backed_blob_gives_the_same_artifact(tmp_path, monkeypatch, zeros):
    w = np.zeros((256, 512), np.float32) if zeros else \
        np.random.default_rng(1).standard_normal((256, 512)).astype(np.float32)
    model = _model(tmp_path / "m.onnx", w)
    small = npuc.compile(model, "rngd", output_dir=str(tmp_path / "a"))
    monkeypatch.setattr(blob_module, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(mapped, "PIECE_BYTES", 4096)
    large = npuc.compile(model, "rngd", output_dir=str(tmp_path / "b"))
    assert isinstance(large.weights, blob_module.Blob) and isinstance(small.weights, bytes)
    assert large.weights == small.weights and large.program == small.program
    a, b = (open(tmp_path / d / "weights.bin", "rb").read() for d in "ab")
    assert a == b == small.weights
    if zeros:  # all zeros: nothing was written, the file is one hole
        assert os.stat(tmp_path / "b" / "weights.bin").st_blocks * 512 < len(b)
    assert npuc.verify(model, "rngd").passed


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3 * blob_module.CHUNK_BYTES + 77),
       st.lists(st.tuples(st.integers(0, 3 * blob_module.CHUNK_BYTES), st.integers(1, 9000)),
                max_size=4))
def test_the_digest_of_a_sparse_file_is_that_of_its_bytes(size, runs):
    """Chunks in holes are not read, yet the digest is the one of the bytes, wherever the
    data lies (inside a chunk, across a chunk's end, in the last, shorter chunk)."""
    import tempfile

    data = bytearray(size)
    with tempfile.TemporaryFile() as f:
        f.truncate(size)
        for at, n in runs:
            chunk = bytes((at + i) % 251 + 1 for i in range(min(n, max(0, size - at))))
            data[at:at + len(chunk)] = chunk
            f.seek(at)
            f.write(chunk)
        f.flush()
        assert blob_module.file_digest(f.fileno(), size) == blob_module.digest(bytes(data))


def test_the_digest_is_a_hash_list_of_chunks():
    import hashlib

    data = bytes(range(256)) * (blob_module.CHUNK_BYTES // 128 + 3)
    chunks = [data[i:i + blob_module.CHUNK_BYTES]
              for i in range(0, len(data), blob_module.CHUNK_BYTES)]
    want = hashlib.sha256(b"".join(hashlib.sha256(c).digest() for c in chunks)).hexdigest()
    assert blob_module.digest(data) == want and len(chunks) == 3
    assert blob_module.digest(data) != blob_module.digest(data + b"\0")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 << 20), st.integers(1, 3 << 20)), max_size=4),
       st.integers(0, 2 << 20))
def test_a_blob_hashed_as_written_has_the_digest_of_its_bytes(writes, tail):
    rng = np.random.default_rng(len(writes))
    hasher, data = blob_module.Digester(), bytearray()
    for gap, n in writes:
        chunk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        hasher.add(len(data) + gap, chunk)
        data += bytes(gap) + chunk
    data += bytes(tail)
    assert hasher.hexdigest(len(data)) == blob_module.digest(bytes(data))

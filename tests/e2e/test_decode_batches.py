"""Decode programs at several batch sizes in one decoder artifact: one weight blob, one KV
cache of the largest batch's rows (a smaller batch uses its leading rows), prefill into
any row, the runtime's choice of program, and token-by-token agreement with onnxruntime
while sequences join, leave and reuse rows."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.decode_verify import admissions, check_steps
from npuc.compiler.decoder_artifact import compile_decoder, decode_batches
from npuc.compiler.decoder_onnx import ReferenceDecoder
from npuc.compiler.ops.kvcache import write_rows
from npuc.compiler.serving.runtime import DecoderRuntime
from npuc.ir.errors import NpucError

MAX_SEQ = 12


@pytest.fixture(scope="module")
def built():
    return compile_decoder("zoo:llama-tiny", "rngd", MAX_SEQ, quantize="bf16",
                           decode_batch="4,1,2")


def test_one_blob_one_cache_of_the_largest_batch(built):
    assert built.roles == ["prefill", "decode", "decode", "decode"]
    assert built.decode_batches == [1, 2, 4]
    single = compile_decoder("zoo:llama-tiny", "rngd", MAX_SEQ, quantize="bf16")
    assert len(built.weights) == len(single.weights)  # the decode programs add no weight
    assert len({p["weights_sha256"] for p in built.programs}) == 1
    kv = built.manifest["kv_cache"]
    assert kv["rows"] == 4 and kv["bytes"] == 4 * single.manifest["kv_cache"]["bytes"]
    assert all(t["shape"] == [4, 2, MAX_SEQ, 16] for t in kv["tensors"])
    per_row = 2 * MAX_SEQ * 16 * 2  # bf16
    for p, b in zip(built.programs, [4, 1, 2, 4]):
        state = p["state"]
        assert state["rows"] == 4 and state["bytes"] == kv["bytes"]
        # every program finds each cache at the same offset, spaced for all four rows
        assert [t["offset"] for t in state["tensors"]] == [i * 4 * per_row for i in range(4)]
        assert all(t["shape"] == [b, 2, MAX_SEQ, 16] for t in state["tensors"])
        assert p["memory"]["dram_bytes"] >= kv["bytes"]
    entries = built.manifest["programs"]
    assert [(e["role"], e["batch"]) for e in entries] == \
        [("prefill", 1), ("decode", 1), ("decode", 2), ("decode", 4)]
    assert "cache_row" in built.programs[0]["inputs"]
    assert not any("cache_row" in p["inputs"] for p in built.programs[1:])


def test_per_token_decode_cost_falls_with_batch(built):
    per = [e["estimated_s_per_token"] for e in built.manifest["programs"][1:]]
    assert per[0] > per[1] > per[2]
    assert f"{per[2] * 1e3:.4f} ms (4 token(s) per run, batch 4)" in built.files["report-3.html"]
    # one weight read serves every row: a batch-4 step costs about one batch-1 step
    assert per[2] * 4 < 1.2 * per[0]


def test_serving_rounds_pick_programs_and_agree_with_onnxruntime(built):
    r = check_steps(built, 3)
    assert r.passed, r.steps
    decodes = [s for s in r.steps if s["kind"] == "decode"]
    assert [s["batch"] for s in decodes] == [1, 2, 4]
    assert [s["rows"] for s in decodes] == [[0], [0, 1], [0, 1, 2, 3]]
    assert [s["position"] for s in decodes] == [8, 9, 10]
    assert all(s["program_vs_ir_identical"] for s in r.steps)
    assert r.agreement == 1.0


def test_a_released_row_is_reused_and_the_rest_keep_decoding(built):
    pre = built.results[0]
    sim = DecoderRuntime.simulated(built.programs, built.roles, built.weights, pre.target)
    ref = ReferenceDecoder(pre.source_proto, built.results[-1].source_proto, MAX_SEQ)
    rng = np.random.default_rng(3)
    tokens = {}

    def admit():
        ids = rng.integers(0, 256, (1, 8), dtype=np.int64)
        rows, got = sim.prefill(ids)
        want = ref.prefill(ids, rows)
        assert np.argmax(got) == np.argmax(want)
        tokens[rows[0]] = int(np.argmax(want))
        return rows[0]

    def step():
        got, want = sim.decode(tokens), ref.decode(tokens)
        for row in tokens:
            assert np.argmax(got[row]) == np.argmax(want[row]), row
            assert np.corrcoef(got[row], want[row])[0, 1] > 0.999
            tokens[row] = int(np.argmax(want[row]))

    assert [admit(), admit(), admit()] == [0, 1, 2]
    assert built.programs[sim.decode_program()]["state"]["batch"] == 4
    step()
    for row in (0, 2):
        sim.release(row)
        ref.release(row)
        del tokens[row]
    assert built.programs[sim.decode_program()]["state"]["batch"] == 2
    step()
    assert admit() == 0  # the lowest free row; its old keys are masked out
    step()
    with pytest.raises(NpucError, match="cache is full"):
        while True:
            step()


def test_runtime_refusals(built):
    sim = DecoderRuntime.simulated(built.programs, built.roles, built.weights)
    with pytest.raises(NpucError, match="takes prompts of shape|no prefill program"):
        sim.prefill(np.zeros((1, 5), np.int64))
    for _ in range(4):
        sim.prefill(np.zeros((1, 8), np.int64))
    with pytest.raises(NpucError, match="no 1 free row"):
        sim.prefill(np.zeros((1, 8), np.int64))
    with pytest.raises(NpucError, match="every sequence in flight"):
        sim.decode({0: 1})
    with pytest.raises(NpucError, match="holds no sequence"):
        sim.release(7)


def test_same_inputs_give_byte_identical_artifacts(tmp_path):
    for name in ("a", "b"):
        compile_decoder("zoo:llama-tiny", "rngd", 10, quantize="fp8", decode_batch=[1, 2],
                        output_dir=str(tmp_path / name), keep_reference=False)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "program-2.json" in files
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert [p["batch"] for p in manifest["programs"]] == [1, 1, 2]


@pytest.mark.parametrize("spec,words", [("x,2", "integers"), ("0,4", "at least 1"),
                                        ([], "at least 1")])
def test_bad_decode_batches_are_refused(spec, words):
    with pytest.raises(NpucError, match=words):
        decode_batches(spec)
    with pytest.raises(NpucError, match="--batch 4"):
        decode_batches("1,2", batch=4)
    assert decode_batches("8, 1,8,64") == [1, 8, 64] and decode_batches(None, 2) == [2]


def test_a_fixed_batch_decode_model_is_refused_at_other_batches(tmp_path):
    import onnx

    from npuc import zoo

    prefill, decode = tmp_path / "prefill.onnx", tmp_path / "decode.onnx"
    onnx.save(zoo.build("llama-tiny", batch=1, use_cache=True), prefill)
    onnx.save(zoo.build("llama-tiny", batch=1, sequence=1, past=9, use_cache=True), decode)
    with pytest.raises(NpucError, match="fixed"):
        compile_decoder(str(prefill), "rngd", 10, str(decode), quantize="bf16",
                        decode_batch="1,2")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(0, 3), st.integers(1, 2), st.integers(0, 2))
def test_a_write_from_a_row_changes_exactly_those_rows(batch, row, s, spare):
    rows = row + batch + spare
    rng = np.random.default_rng(rows)
    cache = rng.standard_normal((rows, 2, 5, 3)).astype(np.float32)
    new = rng.standard_normal((batch, 2, s, 3)).astype(np.float32)
    pos = np.arange(1, 1 + s)
    before = cache.copy()
    write_rows(cache, new, pos, 2, row)
    assert np.array_equal(cache[row:row + batch][:, :, pos], new)
    mask = np.ones(cache.shape, bool)
    mask[row:row + batch, :, pos] = False
    assert np.array_equal(cache[mask], before[mask])


def test_admissions_run_every_decode_batch():
    assert admissions([1, 2, 4], 1, 3) == [1, 2, 4]
    assert admissions([1, 8], 1, 4) == [1, 8, 8, 8]
    assert admissions([1, 8], 2, 2) == [2, 8]
    assert admissions([4], 1, 2) == [4, 4]


@pytest.mark.parametrize("with_row", [False, True])
def test_a_cache_write_exports_to_onnx_that_onnxruntime_agrees_with(with_row):
    import onnxruntime as ort

    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.frontend.onnx_export import export_onnx
    from npuc.compiler.passes.decompose import decompose_npuc
    from npuc.ir.graph import Graph
    from npuc.ir.types import tensor

    g = Graph()
    ins = [g.add_input("cache", tensor("f32", [4, 2, 6, 3])),
           g.add_input("new", tensor("f32", [2, 2, 2, 3])),
           g.add_input("position", tensor("i64", [2]))]
    if with_row:
        ins.append(g.add_input("row", tensor("i64", [1])))
    node = g.create_node("KVCacheWrite", ins, [("out", tensor("f32", [4, 2, 6, 3]))],
                         {"axis": 2}, domain="npuc")
    g.outputs.append(node.outputs[0])
    rng = np.random.default_rng(0)
    feeds = {"cache": rng.standard_normal((4, 2, 6, 3)).astype(np.float32),
             "new": rng.standard_normal((2, 2, 2, 3)).astype(np.float32),
             "position": np.array([4, 1]), "row": np.array([2])}
    feeds = {k: v for k, v in feeds.items() if k in {v.name for v in ins}}
    want = execute(g, feeds)["out"]
    first = 2 if with_row else 0
    assert np.array_equal(want[first:first + 2][:, :, [4, 1]], feeds["new"])
    exported = export_onnx(decompose_npuc(g))
    got = ort.InferenceSession(exported.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.array_equal(got, want)


def test_prompts_of_different_lengths_share_a_decode_step():
    built = compile_decoder("zoo:llama-tiny", "rngd", MAX_SEQ, quantize="bf16",
                            shapes=["sequence=3,6"], decode_batch="2")
    pre = built.results[0]
    sim = DecoderRuntime.simulated(built.programs, built.roles, built.weights, pre.target)
    ref = ReferenceDecoder([r.source_proto for r in built.results[:2]],
                           built.results[-1].source_proto, MAX_SEQ)
    rng = np.random.default_rng(5)
    tokens = {}
    for s in (3, 6):
        ids = rng.integers(0, 256, (1, s), dtype=np.int64)
        rows, _ = sim.prefill(ids)
        tokens[rows[0]] = int(np.argmax(ref.prefill(ids, rows)))
    for _ in range(3):  # the short prompt's row has columns 3..5 unfilled, masked
        got, want = sim.decode(tokens), ref.decode(tokens)
        for row in tokens:
            assert np.argmax(got[row]) == np.argmax(want[row])
            assert np.corrcoef(got[row], want[row])[0, 1] > 0.999
            tokens[row] = int(np.argmax(want[row]))
    assert sim.live[0].columns == [0, 1, 2, 6, 7, 8] and sim.live[1].columns[-1] == 8

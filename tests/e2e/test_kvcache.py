"""A decoder's KV cache as device state: the decode program writes only the new rows, the
prefill and decode programs share one artifact, and greedy decoding through the simulated
programs agrees with onnxruntime token by token."""

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.decode_verify import check_steps, verify_decoder
from npuc.compiler.decoder_artifact import compile_decoder
from npuc.compiler.driver import compile
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.executor.simulator import simulate
from npuc.compiler.ops.kvcache import write_rows
from npuc.ir.errors import NpucError

MAX_SEQ = 12


@pytest.fixture(scope="module")
def decode():
    return compile("zoo:llama-tiny-decode", "rngd", quantize="bf16", max_seq=8)


def test_decode_program_writes_the_new_rows_in_place(decode):
    program = decode.program
    state = program["state"]
    assert state["max_seq"] == 8 and len(state["tensors"]) == 4
    assert not any(n.startswith(("past", "present")) for n in program["inputs"])
    assert list(program["outputs"]) == ["logits"]
    assert all(t["dtype"] == "bf16" for t in state["tensors"])  # as attention reads it
    spans = [(t["offset"], t["offset"] + 2 * int(np.prod(t["shape"])))
             for t in state["tensors"]]
    writes = [c for c in program["commands"] if c["op"] == "kv_write"]
    assert len(writes) == 4 and all(c["engine"] == "dma" for c in writes)
    assert all(c["src"]["shape"] == [1, 2, 1, 16] for c in writes)
    # nothing else writes into a cache: no copy of it, no store of it
    for c in program["commands"]:
        dst = c.get("dst") if c["op"] != "kv_write" else None
        outs = [dst] + (c.get("outputs") or [])
        for r in outs:
            if r is not None and r["space"] == "dram":
                assert not any(lo <= r["offset"] < hi for lo, hi in spans), c
    assert decode.summary["kv_cache_bytes"] == state["bytes"] == 4 * 2 * 8 * 16 * 2


def test_the_cache_stays_in_the_simulated_dram_between_steps(decode):
    program, weights = decode.program, decode.weights
    dram = np.zeros(program["memory"]["dram_bytes"], np.uint8)
    caches = {t["input"]: np.zeros(t["shape"], np.float32) for t in program["state"]["tensors"]}
    for position, token in enumerate([3, 17, 5]):
        mask = np.zeros((1, 8), np.int64)
        mask[:, :position + 1] = 1
        feeds = {"input_ids": np.array([[token]]), "attention_mask": mask,
                 "position_ids": np.array([[position]]),
                 "cache_position": np.array([position])}
        got = simulate(program, weights, feeds, dram=dram)
        want = execute(decode.graph, {**feeds, **caches})
        assert np.array_equal(got["logits"], want["logits"])
        for t in program["state"]["tensors"]:
            caches[t["input"]] = want[t["name"]]
            rounded = want[t["name"]].astype(ml_dtypes.bfloat16)
            held = dram[t["offset"]:t["offset"] + rounded.nbytes]
            assert np.array_equal(held.view(ml_dtypes.bfloat16).reshape(t["shape"]), rounded)


@pytest.mark.parametrize("target,precision", [("rngd", "bf16"), ("rngd", "fp8"),
                                              ("atom", "fp16")])
def test_greedy_decoding_agrees_with_onnxruntime(target, precision):
    r = verify_decoder("zoo:llama-tiny", target, 3, MAX_SEQ, quantize=precision)
    assert r.passed, r.steps
    assert all(s["program_vs_ir_identical"] for s in r.steps)
    assert [s["step"] for s in r.steps] == [0, 1, 2, 3]
    assert [s["position"] for s in r.steps] == [7, 8, 9, 10]
    if precision != "fp8":  # fp8's noise may flip a near-tie (counted apart)
        assert r.agreement == 1.0


def test_a_program_that_does_not_write_its_cache_fails():
    built = compile_decoder("zoo:llama-tiny", "rngd", MAX_SEQ, quantize="bf16")
    assert check_steps(built, 2).passed
    decode = built.programs[-1]
    decode["commands"] = [c for c in decode["commands"] if c["op"] != "kv_write"]
    r = check_steps(built, 2)
    assert not r.passed and r.steps[0]["passed"] and not r.steps[1]["passed"]


def test_one_artifact_one_blob_and_last_token_logits(tmp_path):
    import json

    built = compile_decoder("zoo:llama-tiny", "rngd", MAX_SEQ, quantize="bf16",
                            last_logits=True, output_dir=str(tmp_path / "out"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [p["role"] for p in manifest["programs"]] == ["prefill", "decode"]
    assert manifest["kv_cache"]["max_seq"] == MAX_SEQ
    prefill, decode = built.results
    assert len(built.weights) < 0.6 * (len(prefill.weights) + len(decode.weights))
    offsets = [{b["name"]: b["offset"] for b in p["memory"]["buffers"] if b["space"] == "weights"}
               for p in built.programs]
    shared = {n for n in offsets[0].keys() & offsets[1].keys() if n.endswith("weight_bf16")}
    assert len(shared) == 16  # every projection of both layers, and lm_head
    assert all(offsets[0][n] == offsets[1][n] for n in shared)  # one copy of each
    assert built.programs[0]["outputs"]["logits"]["shape"] == [1, 1, 256]
    assert check_steps(built, 1).passed


def test_max_seq_must_match_a_fixed_past():
    with pytest.raises(NpucError, match="past = 15"):
        compile("zoo:llama-tiny-decode", "rngd", quantize="bf16", max_seq=16)
    with pytest.raises(NpucError, match="no KV cache"):
        compile("zoo:resnet-tiny", "rngd", max_seq=16)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.data())
def test_a_cache_write_changes_exactly_the_rows_it_names(length, s, data):
    length += s
    pos = np.array(data.draw(st.lists(st.integers(0, length - 1), min_size=s, max_size=s,
                                      unique=True)))
    rng = np.random.default_rng(length)
    cache = rng.standard_normal((2, 3, length, 4)).astype(np.float32)
    new = rng.standard_normal((2, 3, s, 4)).astype(np.float32)
    before = cache.copy()
    write_rows(cache, new, pos, 2)
    assert np.array_equal(cache[:, :, pos], new)
    rest = np.setdiff1d(np.arange(length), pos)
    assert np.array_equal(cache[:, :, rest], before[:, :, rest])


def test_decode_calibration_steps_follow_served_prompts():
    from npuc import zoo
    from npuc.compiler.decoder_calibration import served_samples

    prefill = zoo.build("llama-tiny", batch=1, use_cache=True)
    decode = zoo.build("llama-tiny", batch=1, sequence=1, past=MAX_SEQ - 1, use_cache=True)
    pre, dec = served_samples(prefill, decode, MAX_SEQ, count=2)
    assert len(pre) == len(dec) == 2
    assert pre[0]["attention_mask"].all() and pre[0]["input_ids"].shape == (1, 8)
    step = dec[0]
    assert step["position_ids"].tolist() == [[8]]
    assert step["attention_mask"][0].tolist() == [1] * 8 + [0] * 3 + [1]
    past = step["past_key_values.0.key"]
    assert past.shape == (1, 2, MAX_SEQ - 1, 16)
    assert np.abs(past[:, :, :8]).min() > 0 and not past[:, :, 8:].any()
    # the float prefill's keys, as onnxruntime computes them from the same prompt
    import onnxruntime as ort

    session = ort.InferenceSession(prefill.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = {x.name for x in session.get_inputs()}
    want = session.run(["present.0.key", "logits"],
                       {k: v for k, v in pre[0].items() if k in names})
    np.testing.assert_allclose(past[:, :, :8], want[0], rtol=1e-4, atol=1e-5)
    assert step["input_ids"][0, 0] == int(np.argmax(want[1][0, -1]))


def test_decode_calibration_follows_the_users_prompts(tmp_path, capsys):
    from npuc import zoo
    from npuc.compiler.cli import main
    from npuc.compiler.decoder_calibration import served_samples

    prefill = zoo.build("llama-tiny", batch=1, use_cache=True)
    decode = zoo.build("llama-tiny", batch=1, sequence=1, past=MAX_SEQ - 1, use_cache=True)
    prompts = [np.arange(1, 9)[None], np.arange(20, 28)[None], np.arange(40, 48)[None]]
    pre, dec = served_samples(prefill, decode, MAX_SEQ, prompts=prompts)
    assert [p["input_ids"].tolist() for p in pre] == [p.tolist() for p in prompts]
    assert len(dec) == 3 and all(d["position_ids"].tolist() == [[8]] for d in dec)
    text = tmp_path / "prompts.txt"
    text.write_text("1 2 3 4 5 6 7 8\n9 10 11 12 13 14 15 16\n")
    code = main(["compile", "zoo:llama-tiny", "--target", "rngd", "--quantize", "fp8",
                 "--max-seq", "16", "--decode-batch", "1,2", "--calibration", str(text),
                 "-o", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr()
    code = main(["compile", "zoo:llama-tiny", "--target", "rngd", "--quantize", "fp8",
                 "--max-seq", "16", "--batch", "4", "--calibration", str(text),
                 "-o", str(tmp_path / "out4")])
    err = capsys.readouterr().err
    assert code == 2 and "2 calibration prompt(s) for a prefill of batch 4" in err
    assert not (tmp_path / "out4").exists()

"""``npuc compile --max-seq`` and ``npuc verify --max-seq --decode-steps``: a decoder's
prefill and decode programs, from the zoo or from the two ONNX files exporters write."""

import json

import onnx
import pytest

from npuc import zoo
from npuc.compiler.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_decodes_token_by_token_from_two_onnx_files(capsys, tmp_path):
    prefill, decode = tmp_path / "prefill.onnx", tmp_path / "decode.onnx"
    onnx.save(zoo.build("llama-tiny", batch=1, use_cache=True), prefill)
    onnx.save(zoo.build("llama-tiny", batch=1, sequence=1, past=9, use_cache=True), decode)
    code, out, err = run_cli(capsys, "verify", str(prefill), "--decode-model", str(decode),
                             "--target", "rngd", "--quantize", "bf16", "--max-seq", "10",
                             "--decode-steps", "2")
    assert code == 0, (out, err)
    assert "prefill (batch 1, row 0, position 7)" in out
    assert "decode 2 (batch 1, row 0, position 9)" in out
    assert "tokens: 3/3 agree" in out and out.strip().endswith("verify: passed")


def test_verify_serves_two_prompts_at_a_time_into_a_cache_of_four_rows(capsys, tmp_path):
    prefill, decode = tmp_path / "prefill.onnx", tmp_path / "decode.onnx"
    onnx.save(zoo.build("llama-tiny", batch=None, use_cache=True), prefill)
    onnx.save(zoo.build("llama-tiny", batch=None, sequence=1, past=11, use_cache=True), decode)
    code, out, err = run_cli(capsys, "verify", str(prefill), "--decode-model", str(decode),
                             "--target", "rngd", "--quantize", "bf16", "--max-seq", "12",
                             "--decode-steps", "2", "--batch", "2", "--decode-batch", "2,4")
    assert code == 0, (out, err)
    assert "prefill (batch 2, rows 2-3, position 7)" in out
    assert "decode 2 (batch 4, rows 0-3, position 9)" in out and "tokens: 4/4 agree" in out


def test_verify_with_last_logits_checks_a_prefill_that_returns_one_position(capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, "verify", "zoo:llama-tiny", "--target", "rngd",
                             "--quantize", "bf16", "--max-seq", "12", "--decode-steps", "2",
                             "--last-logits", "-o", str(out_dir))
    assert code == 0, (out, err)
    assert "tokens: 3/3 agree" in out and out.strip().endswith("verify: passed")
    manifest = json.loads((out_dir / "manifest.json").read_text())
    prefill = manifest["programs"][0]
    assert prefill["role"] == "prefill" and prefill["inputs"]["input_ids"][1] > 1
    program = json.loads((out_dir / prefill["program"]).read_text())
    assert program["outputs"]["logits"]["shape"][1] == 1  # the last position's only


def test_verify_runs_every_prefill_bucket(capsys, tmp_path):
    code, out, err = run_cli(capsys, "verify", "zoo:llama-tiny", "--target", "rngd",
                             "--quantize", "bf16", "--max-seq", "12", "--decode-steps", "2",
                             "--shape", "sequence=4,8")
    assert code == 0, (out, err)
    # each prompt length through its own prefill program, then decoded from that position
    assert "prefill (batch 1, row 0, position 3)" in out
    assert "prefill (batch 1, row 0, position 7)" in out
    assert "decode 2 (batch 1, row 0, position 5)" in out
    assert "decode 2 (batch 1, row 0, position 9)" in out
    assert "tokens: 6/6 agree" in out and out.strip().endswith("verify: passed")


def test_compile_writes_prefill_and_decode_programs(capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, "compile", "zoo:llama-tiny", "--target", "atom",
                             "--max-seq", "16", "--last-logits", "--shape", "sequence=4,8",
                             "-o", str(out_dir))
    assert code == 0, err
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert [p["role"] for p in manifest["programs"]] == ["prefill", "prefill", "decode"]
    assert [p["inputs"]["input_ids"] for p in manifest["programs"]] == [[1, 4], [1, 8], [1, 1]]
    assert manifest["kv_cache"]["max_seq"] == 16
    assert "KV cache of 16 positions" in out


def test_compile_decode_batches_prints_per_token_cost(capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, "compile", "zoo:llama-tiny", "--target", "rngd",
                             "--quantize", "bf16", "--max-seq", "16", "--decode-batch", "1,4",
                             "-o", str(out_dir))
    assert code == 0, err
    assert "KV cache: 4 row(s)" in out
    per = [float(line.split("(")[1].split(" ms per token")[0])
           for line in out.splitlines() if "ms per token" in line]
    assert len(per) == 2 and per[1] < per[0]
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert [(p["role"], p["batch"]) for p in manifest["programs"]] == \
        [("prefill", 1), ("decode", 1), ("decode", 4)]


@pytest.mark.parametrize("argv,words", [
    (["compile", "zoo:llama-tiny", "--target", "rngd", "--decode-batch", "1,4", "-o", "x"],
     "--decode-batch needs --max-seq"),
    (["compile", "zoo:llama-tiny", "--target", "rngd", "--max-seq", "16", "--decode-batch",
      "1,x", "-o", "x"], "integers"),
    (["compile", "zoo:llama-tiny", "--target", "rngd", "--max-seq", "16", "--batch", "4",
      "--decode-batch", "1,2", "-o", "x"], "largest --decode-batch"),
    (["verify", "zoo:llama-tiny", "--target", "rngd", "--decode-steps", "2"], "--max-seq"),
    (["verify", "zoo:llama-tiny", "--target", "rngd", "--max-seq", "9", "--decode-steps", "3"],
     "need 11 cache positions"),
    (["verify", "zoo:llama-tiny", "--target", "rngd", "--max-seq", "16"], "--decode-steps"),
    (["compile", "zoo:resnet-tiny", "--target", "rngd", "--max-seq", "16", "-o", "x"],
     "not a decoder"),
    (["verify", "model.onnx", "--target", "rngd", "--max-seq", "16", "--decode-steps", "1"],
     "model.onnx: no such file"),
    (["compile", "zoo:llama-tiny", "--target", "rngd", "--max-seq", "16", "--shape", "x=4",
      "-o", "x"], "--shape sequence=N"),
])
def test_decoder_options_refused_with_one_line(capsys, argv, words):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert lines[-1].startswith("npuc: error: ") and words in lines[-1], err
    assert "Traceback" not in err


def test_decoder_mistakes_are_named_before_they_cost(capsys, tmp_path):
    """A missing model file, a cache no longer than the prompt, and too few decode steps
    to run every decode program: each one line, exit 2, no output folder."""
    code, _, err = run_cli(capsys, "compile", str(tmp_path / "nosuch.onnx"), "--target",
                           "rngd", "--max-seq", "64", "-o", str(tmp_path / "a"))
    assert code == 2 and "nosuch.onnx: no such file" in err
    code, _, err = run_cli(capsys, "compile", "zoo:llama-tiny", "--target", "rngd",
                           "--max-seq", "8", "-o", str(tmp_path / "b"))
    assert code == 2 and "--max-seq 8: the 8-token prompt" in err and "--max-seq 9" in err
    code, _, err = run_cli(capsys, "compile", "zoo:llama-tiny", "--target", "rngd",
                           "--quantize", "fp8", "--max-seq", "6", "-o", str(tmp_path / "b"))
    assert code == 2 and "--max-seq 6: the 8-token prompt" in err  # before calibrating
    code, _, err = run_cli(capsys, "verify", "zoo:llama-tiny", "--target", "rngd",
                           "--max-seq", "16", "--decode-steps", "2", "--decode-batch", "4,2,1")
    assert code == 2 and "batch 4" in err and "--decode-steps 3" in err
    model = tmp_path / "llama.onnx"
    onnx.save(zoo.build("llama-tiny"), model)
    code, _, err = run_cli(capsys, "compile", str(model), "--target", "rngd", "--max-seq",
                           "16", "-o", str(tmp_path / "c"))
    assert code == 2 and "give the decode form" in err and "--decode-model" in err
    code, _, err = run_cli(capsys, "compile", "zoo:llama-tiny", "--decode-model", str(model),
                           "--target", "rngd", "--max-seq", "16", "-o", str(tmp_path / "d"))
    assert code == 2 and "builds its own decode form" in err and "llama.onnx" in err
    assert not any((tmp_path / n).exists() for n in "abcd")

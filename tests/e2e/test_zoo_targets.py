"""The verify matrix: every tiny zoo model, on every shipped chip, in every precision the
chip computes in. Each program must match the reference within its precision's
tolerance, and its IR bit for bit."""

import pytest

import npuc
from npuc.targets import get_target
from npuc.targets.registry import shipped_names

MODELS = ["resnet-tiny", "mobilenetv2-tiny", "bert-tiny", "gpt2-tiny", "vit-tiny"]
# --quantize spellings of the precisions a chip file lists (fp32 is "none")
_CHOICE = {"fp32": "none", "int8": "int8", "fp8": "fp8", "bf16": "bf16", "fp16": "fp16"}


def _cells():
    cells = []
    for chip in shipped_names():
        precisions = [_CHOICE[d] for d in get_target(chip).quant.dtypes if d in _CHOICE]
        for precision in dict.fromkeys(precisions + ["none"]):
            cells.append((chip, precision))
    return cells


@pytest.mark.parametrize("chip,precision", _cells())
@pytest.mark.parametrize("model", MODELS)
def test_compiles_and_verifies(model, chip, precision):
    r = npuc.verify(f"zoo:{model}", chip, quantize=precision, calibration="random:2")
    assert r.passed, r.to_json()
    s = r.compiled.summary
    assert s["sram_peak_bytes"] <= s["sram_bytes"]
    assert s["estimated_latency_s"] > 0
    for m in r.outputs.values():
        assert m["program_vs_ir_identical"] and m["program_vs_ir_sqnr_db"] == 200.0

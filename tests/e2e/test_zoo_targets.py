"""Every tiny zoo model compiles for each main chip and its program verifies."""

import pytest

import npuc

MODELS = ["resnet-tiny", "mobilenetv2-tiny", "bert-tiny", "gpt2-tiny", "vit-tiny"]
TARGETS = ["warboy-2pe", "rngd", "atom", "x220-enterprise"]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("model", MODELS)
def test_compiles_and_verifies(model, target):
    r = npuc.verify(f"zoo:{model}", target, calibration="random:2")
    assert r.passed, r.to_json()
    s = r.compiled.summary
    assert s["sram_peak_bytes"] <= s["sram_bytes"]
    assert s["estimated_latency_s"] > 0
    for m in r.outputs.values():
        assert m["program_vs_ir_sqnr_db"] >= 60

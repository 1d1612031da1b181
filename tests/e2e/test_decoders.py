"""Decoders on the data-centre chips: prefill and decode-with-cache forms compile with every
layer on the NPU and verify against onnxruntime, bit-identical to their IR."""

import pytest

import npuc
from npuc import zoo

CASES = [("rngd", "bf16", {}), ("rngd", "fp8", {"past": 5, "sequence": 1}),
         ("atom", "fp16", {"past": 5, "sequence": 1, "attention": "sdpa"})]


@pytest.mark.parametrize("chip,precision,form", CASES,
                         ids=[f"{c}-{p}-{'decode' if f else 'prefill'}" for c, p, f in CASES])
def test_decoder_verifies_on_the_chip(chip, precision, form):
    proto = zoo.build("llama-tiny", batch=1, **form)
    result = npuc.verify(proto, chip, quantize=precision, inputs=zoo.sample_inputs(proto))
    assert result.passed, result.to_json()
    for row in result.outputs.values():
        assert row["program_vs_ir_sqnr_db"] == 200.0
    compiled = result.compiled
    on_cpu = [n for g in compiled.schedule.groups if g.device == "cpu" for n in g.nodes]
    assert on_cpu == []
    fused = {n.qualified_type for n in compiled.graph.nodes}
    assert {"npuc::RMSNorm", "npuc::Rotary", "npuc::Attention", "npuc::GatedMLP"} <= fused

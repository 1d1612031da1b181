"""The Llama-style decoder: every export style computes the same thing, and decode steps
with the cache continue a prefill exactly."""

import numpy as np
import onnx
import pytest

from npuc import zoo
from npuc.ir.errors import NpucError

from .test_zoo import run

STYLES = [{"attention": "sdpa"}, {"act": "gelu"}, {"opset": 18},
          {"opset": 23, "norm": "onnx", "rotary": "onnx", "attention": "onnx"}]


@pytest.mark.parametrize("style", STYLES, ids=lambda s: ",".join(f"{k}={v}" for k, v in
                                                               s.items()))
def test_export_styles_agree(style):
    base = zoo.build("llama-tiny", batch=2)
    other = zoo.build("llama-tiny", batch=2, **style)
    onnx.checker.check_model(other, full_check=True)
    feeds = zoo.sample_inputs(base, batch=2)
    want, got = run(base, feeds)["logits"], run(other, feeds)["logits"]
    if style.get("act") == "gelu":
        assert not np.allclose(want, got, atol=1e-4)  # a different activation
    else:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_decode_steps_continue_the_prefill(attention):
    n = 6
    ids = (np.arange(n, dtype=np.int64)[None] * 7) % 256
    ones = np.ones((1, n), np.int64)
    full = run(zoo.build("llama-tiny", batch=1, attention=attention, sequence=n),
               {"input_ids": ids, "attention_mask": ones,
                "position_ids": np.arange(n, dtype=np.int64)[None]})["logits"]
    first = zoo.build("llama-tiny", batch=1, attention=attention, sequence=3, use_cache=True)
    out = run(first, {"input_ids": ids[:, :3], "attention_mask": ones[:, :3],
                      "position_ids": np.arange(3, dtype=np.int64)[None]})
    np.testing.assert_allclose(out["logits"][0], full[0, :3], rtol=1e-4, atol=1e-5)
    for t in range(3, n):
        cache = {k.replace("present", "past_key_values"): v for k, v in out.items()
                 if k.startswith("present")}
        assert cache["past_key_values.0.key"].shape == (1, 2, t, 16)
        step = zoo.build("llama-tiny", batch=1, attention=attention, sequence=1, past=t)
        out = run(step, {"input_ids": ids[:, t:t + 1], "attention_mask": ones[:, :t + 1],
                         "position_ids": np.array([[t]], np.int64), **cache})
        np.testing.assert_allclose(out["logits"][0, 0], full[0, t], rtol=1e-4, atol=1e-5)


def test_onnx_attention_needs_opset_23():
    with pytest.raises(NpucError, match="opset 23"):
        zoo.build("llama-tiny", attention="onnx")

"""Llama-style decoders: the KV cache is consistent, big ones keep weights external."""

import os

import numpy as np
import onnxruntime as ort

from npuc import zoo
from npuc.compiler.frontend.onnx_import import import_onnx


def run(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def test_a_decode_step_on_the_cache_gives_the_prefill_logits():
    ids = np.array([[5, 17, 123, 9, 400, 2, 77, 31, 8]], dtype=np.int64)
    whole = run(zoo.build("decoder-tiny", sequence=9), {"input_ids": ids})
    first = run(zoo.build("decoder-tiny", sequence=8), {"input_ids": ids[:, :8]})
    feeds = {"input_ids": ids[:, 8:]}
    feeds.update({f"past_key_values.{k[len('present.'):]}": v for k, v in first.items()
                  if k.startswith("present.")})
    step = run(zoo.build("decoder-tiny", sequence=1, past=8), feeds)
    np.testing.assert_allclose(step["logits"][:, 0], whole["logits"][:, 8], atol=1e-5)
    np.testing.assert_allclose(step["present.1.value"], whole["present.1.value"], atol=1e-5)
    assert step["present.0.key"].shape == (1, 2, 9, 16)  # 2 KV heads of 16


def test_big_decoders_keep_weights_external_as_a_sparse_file(tmp_path):
    assert zoo.has_external_weights("llama3.1-8b") and not zoo.has_external_weights("decoder-tiny")
    path = zoo.model_path("llama3.2-1b", folder=str(tmp_path / "m"))
    data = tmp_path / "m" / "weights.bin"
    assert data.stat().st_size >= 4 * 1_235_814_400
    assert data.stat().st_blocks * 512 < 1 << 20  # a hole, not 5 GB of zeros
    assert os.path.getsize(path) < 1 << 20
    assert zoo.model_path("llama3.2-1b", folder=str(tmp_path / "m")) == path  # reused
    graph = import_onnx(path)
    embed = graph.constants["model.embed_tokens.weight"].const
    assert embed.shape == (128256, 2048) and not embed[:4].any()  # mapped, reads as zeros


def test_qwen2_has_qkv_biases_and_grouped_query_attention():
    model = zoo.build("qwen2-7b")
    names = {t.name for t in model.graph.initializer}
    assert "model.layers.0.self_attn.q_proj.bias" in names
    dims = {t.name: list(t.dims) for t in model.graph.initializer}
    assert dims["model.layers.0.self_attn.k_proj.weight"] == [3584, 512]  # 4 KV heads of 128

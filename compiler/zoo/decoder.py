"""Llama-style decoders at published sizes (Llama 3.x, Qwen2), built by the shared Llama
builder (:mod:`.llama`) in the folded form HuggingFace's ``LlamaForCausalLM`` exports with
a KV cache: RMSNorm written out, rotary embeddings by ``rotate_half`` with the cos/sin
tables of the positions folded to constants, grouped-query attention whose key/value heads
are repeated by ``Unsqueeze``/``Expand``/``Reshape``, a boolean causal mask applied with
``Where``, and the gated SiLU MLP.

Inputs are ``input_ids`` [batch, sequence] and, when ``past`` > 0, the cache of the
earlier positions, ``past_key_values.{i}.key``/``.value`` [batch, kv_heads, past,
head_dim]; outputs are ``logits`` and ``present.{i}.key``/``.value`` [batch, kv_heads,
past + sequence, head_dim]. ``sequence=128, past=0`` is a prefill of 128 tokens;
``sequence=1, past=N`` one decode step at position N.

Models whose float32 weights pass 2 GB keep them as external data that reads as zeros:
:func:`npuc.compiler.zoo.model_path` writes the graph beside a sparse file, so an 8B or 70B
model compiles and is estimated without its weights ever being in memory. Rotary scaling
(Llama 3.1's ``rope_scaling``) changes no shape or cost and is left out.
"""

from __future__ import annotations

from npuc.compiler.zoo.llama import LlamaConfig

# Llama 3.1 8B with a 128-token prefill; the other published sizes change some of these.
LLAMA31_8B = {"vocab_size": 128256, "hidden": 4096, "layers": 32, "heads": 32, "kv_heads": 8,
              "intermediate": 14336, "rope_theta": 500000.0, "eps": 1e-5, "sequence": 128}


def published(**sizes) -> LlamaConfig:
    """The folded-form configuration of Llama 3.1 8B, with ``sizes`` changed."""
    return LlamaConfig(**{**LLAMA31_8B, **sizes, "form": "folded"})

"""GPT-2 as HuggingFace's ``GPT2LMHeadModel`` exports with ``input_ids`` alone:
pre-norm decoder blocks with a fused ``c_attn`` projection split in three, a constant
lower-triangular causal mask applied with ``Where``, the tanh GELU, and logits from the
token embedding transposed (the head's weight is tied to it).

Head reshapes use constant target shapes with -1 for the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from npuc.compiler.zoo.builder import GraphBuilder
from npuc.compiler.zoo.inputs import InputSpec
from npuc.compiler.zoo.transformer import (
    STD,
    attend,
    gelu_tanh,
    heads_shape,
    layer_norm,
    linear,
    merge_heads,
    split_heads,
)

EPS = 1e-5


@dataclass(frozen=True)
class GPT2Config:
    """Sizes of the model; the defaults are the 124M ``gpt2`` at 128 tokens."""

    vocab_size: int = 50257
    hidden: int = 768
    layers: int = 12
    heads: int = 12
    max_positions: int = 1024
    sequence: int = 128


def input_specs(cfg: GPT2Config) -> list[InputSpec]:
    """Token ids, int64 [batch, sequence]."""
    return [InputSpec("input_ids", "tokens", (None, cfg.sequence), cfg.vocab_size)]


def build(b: GraphBuilder, cfg: GPT2Config) -> None:
    """Add the embeddings, the decoder blocks, ``ln_f`` and the tied LM head to ``b``."""
    spec = input_specs(cfg)[0]
    b.input(spec.name, spec.elem_type, spec.shape)
    h = cfg.hidden
    wte = b.param("transformer.wte.weight", b.normal((cfg.vocab_size, h), STD))
    # HF initialises the position table with a smaller spread than the token table.
    wpe = b.param("transformer.wpe.weight", b.normal((cfg.max_positions, h), 0.01))
    with b.scope("transformer"):
        with b.scope("wte"):
            x = b.op("Gather", wte, "input_ids")
        position_ids = b.const(np.arange(cfg.sequence)[None, :], np.int64)
        with b.scope("wpe"):
            positions = b.op("Gather", wpe, position_ids)
        x = b.op("Add", x, positions)
        for index in range(cfg.layers):
            x = _block(b, x, index, cfg)
        x = layer_norm(b, x, "transformer.ln_f", h, EPS)
    with b.scope("lm_head"):
        # The tied weight is the [vocab, hidden] table itself; the exporter transposes it.
        head = b.op("Transpose", wte, perm=[1, 0])
        b.op("MatMul", x, head, name="logits")
    b.output("logits", TensorProto.FLOAT, (None, cfg.sequence, cfg.vocab_size))


def _block(b: GraphBuilder, x: str, index: int, cfg: GPT2Config) -> str:
    name, h = f"transformer.h.{index}", cfg.hidden
    with b.scope(f"h.{index}"):
        a = layer_norm(b, x, f"{name}.ln_1", h, EPS)
        with b.scope("attn"):
            a = _attention(b, a, f"{name}.attn", cfg)
        x = b.op("Add", a, x)
        m = layer_norm(b, x, f"{name}.ln_2", h, EPS)
        with b.scope("mlp"):
            m = linear(b, m, f"{name}.mlp.c_fc", h, 4 * h)
            with b.scope("act"):
                m = gelu_tanh(b, m)
            m = linear(b, m, f"{name}.mlp.c_proj", 4 * h, h)
        return b.op("Add", x, m)


def _attention(b: GraphBuilder, x: str, name: str, cfg: GPT2Config) -> str:
    h, s, heads = cfg.hidden, cfg.sequence, cfg.heads
    head_dim = h // heads
    qkv = linear(b, x, f"{name}.c_attn", h, 3 * h)
    q, k, v = b.op("Split", qkv, b.const([h, h, h], np.int64), outputs=3, axis=2)
    tail = [s, heads, head_dim]
    q = split_heads(b, q, heads_shape(b, q, tail, "minus_one"), [0, 2, 1, 3])
    k_t = split_heads(b, k, heads_shape(b, k, tail, "minus_one"), [0, 2, 3, 1])
    v = split_heads(b, v, heads_shape(b, v, tail, "minus_one"), [0, 2, 1, 3])
    # The slice of the registered ``bias`` buffer for this length, folded to a constant.
    causal = b.const(np.tril(np.ones((s, s), dtype=bool))[None, None], np.bool_)
    context = attend(b, q, k_t, v, head_dim, causal_mask=causal)
    context = merge_heads(b, context, h, "minus_one", s)
    return linear(b, context, f"{name}.c_proj", h, h)

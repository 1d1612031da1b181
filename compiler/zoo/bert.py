"""BERT as HuggingFace's ``BertModel`` exports with ``input_ids`` and ``attention_mask``
(token types left to their all-zero default): embeddings, post-norm encoder layers with
exact (erf) GELU, and the tanh pooler.

Head reshapes use the Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains that a
dynamic-axes export is full of.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from npuc.compiler.zoo.builder import GraphBuilder
from npuc.compiler.zoo.inputs import InputSpec
from npuc.compiler.zoo.transformer import (
    MASK_VALUE,
    STD,
    EncoderSizes,
    gemm,
    intermediate,
    layer_norm,
    linear,
    self_attention,
)

EPS = 1e-12


@dataclass(frozen=True)
class BertConfig(EncoderSizes):
    """Sizes of the model; the defaults are ``bert-base-uncased`` at 128 tokens."""

    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    sequence: int = 128


def input_specs(cfg: BertConfig) -> list[InputSpec]:
    """Token ids and the 1/0 padding mask, both int64 [batch, sequence]."""
    return [InputSpec("input_ids", "tokens", (None, cfg.sequence), cfg.vocab_size),
            InputSpec("attention_mask", "mask", (None, cfg.sequence))]


def build(b: GraphBuilder, cfg: BertConfig) -> None:
    """Add embeddings, the extended attention mask, the encoder and the pooler to ``b``."""
    for spec in input_specs(cfg):
        b.input(spec.name, spec.elem_type, spec.shape)
    x = _embeddings(b, cfg)
    mask = _extended_mask(b, "attention_mask")
    with b.scope("encoder"):
        for index in range(cfg.layers):
            last = index == cfg.layers - 1
            x = _layer(b, x, index, cfg, mask,
                       output="last_hidden_state" if last else None)
    with b.scope("pooler"):
        first = b.op("Gather", x, b.const(0, np.int64), axis=1)
        pooled = gemm(b, first, "pooler.dense", cfg.hidden, cfg.hidden, scope="dense")
        with b.scope("activation"):
            b.op("Tanh", pooled, name="pooler_output")
    b.output("last_hidden_state", TensorProto.FLOAT, (None, cfg.sequence, cfg.hidden))
    b.output("pooler_output", TensorProto.FLOAT, (None, cfg.hidden))


def _embeddings(b: GraphBuilder, cfg: BertConfig) -> str:
    h = cfg.hidden
    word = b.param("embeddings.word_embeddings.weight", b.normal((cfg.vocab_size, h), STD))
    position = b.param("embeddings.position_embeddings.weight",
                       b.normal((cfg.max_positions, h), STD))
    token_type = b.param("embeddings.token_type_embeddings.weight",
                         b.normal((cfg.type_vocab_size, h), STD))
    with b.scope("embeddings"):
        with b.scope("word_embeddings"):
            x = b.op("Gather", word, "input_ids")
        # The registered buffers token_type_ids (zeros) and position_ids (arange) are
        # exported as constants of shape [1, sequence].
        type_ids = b.const(np.zeros((1, cfg.sequence)), np.int64)
        with b.scope("token_type_embeddings"):
            types = b.op("Gather", token_type, type_ids)
        x = b.op("Add", x, types)
        position_ids = b.const(np.arange(cfg.sequence)[None, :], np.int64)
        with b.scope("position_embeddings"):
            positions = b.op("Gather", position, position_ids)
        x = b.op("Add", x, positions)
        return layer_norm(b, x, "embeddings.LayerNorm", h, EPS)


def _extended_mask(b: GraphBuilder, mask: str) -> str:
    """HF's ``get_extended_attention_mask``: mask[:, None, None, :], cast to float, then
    ``(1.0 - mask) * finfo.min``, giving 0 for tokens and a huge negative for padding."""
    x = b.op("Unsqueeze", mask, b.const([1], np.int64))
    x = b.op("Unsqueeze", x, b.const([2], np.int64))
    x = b.op("Cast", x, to=TensorProto.FLOAT)
    x = b.op("Sub", b.const(1.0), x)
    return b.op("Mul", x, b.const(MASK_VALUE))


def _layer(b: GraphBuilder, x: str, index: int, cfg: BertConfig, mask: str,
           output: str | None) -> str:
    h, name = cfg.hidden, f"encoder.layer.{index}"
    with b.scope(f"layer.{index}"):
        with b.scope("attention"):
            with b.scope("self"):
                a = self_attention(b, x, f"{name}.attention.self", h, cfg.heads, "dynamic",
                                   cfg.sequence, additive_mask=mask)
            with b.scope("output"):
                a = linear(b, a, f"{name}.attention.output.dense", h, h)
                a = b.op("Add", a, x)
                a = layer_norm(b, a, f"{name}.attention.output.LayerNorm", h, EPS)
        y = intermediate(b, a, name, h, cfg.intermediate)
        with b.scope("output"):
            y = linear(b, y, f"{name}.output.dense", cfg.intermediate, h)
            y = b.op("Add", y, a)
            return layer_norm(b, y, f"{name}.output.LayerNorm", h, EPS, output=output)

"""Llama-style decoders (Llama 3.x, Qwen2) as HuggingFace's ``LlamaForCausalLM`` exports
with a KV cache: RMSNorm written out (``Pow``, ``ReduceMean``, ``Add``, ``Sqrt``,
``Reciprocal``, ``Mul``), rotary embeddings by ``rotate_half`` (two ``Slice``, ``Neg``,
``Concat``) with the cos/sin tables of the positions folded to constants, grouped-query
attention whose key/value heads are repeated by ``Unsqueeze``/``Expand``/``Reshape``, a
boolean causal mask applied with ``Where``, and the gated SiLU MLP.

Inputs are ``input_ids`` [batch, sequence] and, when ``past`` > 0, the cache of the
earlier positions, ``past_key_values.{i}.key``/``.value`` [batch, kv_heads, past,
head_dim]; outputs are ``logits`` and ``present.{i}.key``/``.value`` [batch, kv_heads,
past + sequence, head_dim]. ``sequence=128, past=0`` is a prefill of 128 tokens;
``sequence=1, past=N`` one decode step at position N.

Models whose float32 weights pass 2 GB (protobuf's limit for one message) keep them as
external data that reads as zeros: :func:`npuc.compiler.zoo.model_path` writes the graph beside a
sparse file, so an 8B or 70B model compiles and is estimated without its weights ever
being in memory. Rotary scaling (Llama 3.1's ``rope_scaling``) changes no shape or cost
and is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from npuc.compiler.zoo.builder import GraphBuilder
from npuc.compiler.zoo.inputs import InputSpec
from npuc.compiler.zoo.transformer import MASK_VALUE, STD

# Past this many float32 parameter bytes the weights are external zeros.
EXTERNAL_BYTES = 2**31
EXTERNAL_FILE = "weights.bin"


@dataclass(frozen=True)
class LlamaConfig:
    """Sizes of the model; the defaults are Llama 3.1 8B with a 128-token prefill."""

    vocab_size: int = 128256
    hidden: int = 4096
    layers: int = 32
    heads: int = 32
    kv_heads: int = 8
    intermediate: int = 14336
    rope_theta: float = 500000.0
    eps: float = 1e-5
    tie_embeddings: bool = False
    qkv_bias: bool = False          # Qwen2 adds biases to q, k and v
    sequence: int = 128
    past: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def parameters(cfg: LlamaConfig) -> int:
    """The parameter count, from the sizes alone."""
    h, kv = cfg.hidden, cfg.kv_heads * cfg.head_dim
    attention = 2 * h * h + 2 * h * kv + (h + 2 * kv if cfg.qkv_bias else 0)
    layer = attention + 3 * h * cfg.intermediate + 2 * h
    head = 0 if cfg.tie_embeddings else cfg.vocab_size * h
    return cfg.vocab_size * h + cfg.layers * layer + h + head


def external_weights(cfg: LlamaConfig) -> bool:
    """True when the float32 weights pass protobuf's 2 GB: they are then external zeros."""
    return 4 * parameters(cfg) > EXTERNAL_BYTES


def input_specs(cfg: LlamaConfig) -> list[InputSpec]:
    """Token ids, int64 [batch, sequence], then the past keys and values (float32)."""
    specs = [InputSpec("input_ids", "tokens", (None, cfg.sequence), cfg.vocab_size)]
    for i in range(cfg.layers if cfg.past else 0):
        for kind in ("key", "value"):
            specs.append(InputSpec(f"past_key_values.{i}.{kind}", "image",
                                   (None, cfg.kv_heads, cfg.past, cfg.head_dim)))
    return specs


def build(b: GraphBuilder, cfg: LlamaConfig) -> None:
    """Add the embedding, the decoder layers, the final norm and the LM head to ``b``."""
    if external_weights(cfg):
        b.keep_weights_external(EXTERNAL_FILE)
    for spec in input_specs(cfg):
        b.input(spec.name, spec.elem_type, spec.shape)
    h, total = cfg.hidden, cfg.past + cfg.sequence
    embed = b.weight("model.embed_tokens.weight", (cfg.vocab_size, h),
                     lambda: b.normal((cfg.vocab_size, h), STD))
    with b.scope("model"):
        with b.scope("embed_tokens"):
            x = b.op("Gather", embed, "input_ids")
        tables = _rotary_tables(b, cfg)
        mask = b.const(np.tril(np.ones((cfg.sequence, total), dtype=bool), cfg.past)[None, None],
                       np.bool_)
        for index in range(cfg.layers):
            with b.scope(f"layers.{index}"):
                x = _layer(b, x, index, cfg, tables, mask)
        x = rms_norm(b, x, "model.norm", h, cfg.eps, "norm")
    with b.scope("lm_head"):
        if cfg.tie_embeddings:
            head = b.op("Transpose", embed, perm=[1, 0])
        else:
            head = b.weight("lm_head.weight", (h, cfg.vocab_size),
                            lambda: b.normal((h, cfg.vocab_size), STD))
        b.op("MatMul", x, head, name="logits")
    b.output("logits", TensorProto.FLOAT, (None, cfg.sequence, cfg.vocab_size))
    for i in range(cfg.layers):
        for kind in ("key", "value"):
            b.output(f"present.{i}.{kind}", TensorProto.FLOAT,
                     (None, cfg.kv_heads, total, cfg.head_dim))


def rms_norm(b: GraphBuilder, x: str, name: str, dim: int, eps: float, scope: str) -> str:
    """``weight * x / sqrt(mean(x^2) + eps)`` as LlamaRMSNorm exports it."""
    weight = b.weight(f"{name}.weight", (dim,), lambda: b.normal((dim,), STD, mean=1.0))
    with b.scope(scope):
        y = b.op("Pow", x, b.const(2.0))
        y = b.op("ReduceMean", y, axes=[-1], keepdims=1)
        y = b.op("Add", y, b.const(eps))
        y = b.op("Sqrt", y)
        y = b.op("Reciprocal", y)
        y = b.op("Mul", x, y)
        return b.op("Mul", weight, y)


def _linear(b: GraphBuilder, x: str, name: str, din: int, dout: int, bias: bool) -> str:
    weight = b.weight(f"{name}.weight", (din, dout), lambda: b.normal((din, dout), STD))
    with b.scope(name.rsplit(".", 1)[-1]):
        y = b.op("MatMul", x, weight)
        if bias:
            y = b.op("Add", b.weight(f"{name}.bias", (dout,), lambda: b.normal((dout,), STD)),
                     y)
        return y


def _rotary_tables(b: GraphBuilder, cfg: LlamaConfig) -> tuple[str, str]:
    """cos and sin of the positions ``past .. past+sequence``, [1, 1, sequence, head_dim]."""
    d = cfg.head_dim
    inv = 1.0 / cfg.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    angles = np.outer(np.arange(cfg.past, cfg.past + cfg.sequence), inv)
    angles = np.concatenate([angles, angles], axis=-1)[None, None]
    return b.const(np.cos(angles)), b.const(np.sin(angles))


def _rotate(b: GraphBuilder, x: str, tables: tuple[str, str], d: int) -> str:
    """``x * cos + rotate_half(x) * sin``."""
    first = b.op("Slice", x, b.const([0], np.int64), b.const([d // 2], np.int64),
                 b.const([3], np.int64))
    second = b.op("Slice", x, b.const([d // 2], np.int64), b.const([d], np.int64),
                  b.const([3], np.int64))
    rotated = b.op("Concat", b.op("Neg", second), first, axis=-1)
    return b.op("Add", b.op("Mul", x, tables[0]), b.op("Mul", rotated, tables[1]))


def _heads(b: GraphBuilder, x: str, heads: int, d: int) -> str:
    """[batch, seq, heads*d] -> [batch, heads, seq, d]."""
    y = b.op("Reshape", x, b.const([0, 0, heads, d], np.int64))
    return b.op("Transpose", y, perm=[0, 2, 1, 3])


def _repeat_kv(b: GraphBuilder, x: str, cfg: LlamaConfig) -> str:
    """[batch, kv_heads, T, d] -> [batch, heads, T, d], each kv head serving a group."""
    rep = cfg.heads // cfg.kv_heads
    if rep == 1:
        return x
    y = b.op("Unsqueeze", x, b.const([2], np.int64))
    y = b.op("Expand", y, b.const([1, 1, rep, 1, 1], np.int64))
    return b.op("Reshape", y, b.const([0, cfg.heads, -1, cfg.head_dim], np.int64))


def _attention(b: GraphBuilder, x: str, index: int, cfg: LlamaConfig, tables, mask) -> str:
    name, d, kv = f"model.layers.{index}.self_attn", cfg.head_dim, cfg.kv_heads * cfg.head_dim
    q = _heads(b, _linear(b, x, f"{name}.q_proj", cfg.hidden, cfg.hidden, cfg.qkv_bias),
               cfg.heads, d)
    k = _heads(b, _linear(b, x, f"{name}.k_proj", cfg.hidden, kv, cfg.qkv_bias),
               cfg.kv_heads, d)
    v = _heads(b, _linear(b, x, f"{name}.v_proj", cfg.hidden, kv, cfg.qkv_bias),
               cfg.kv_heads, d)
    q, k = _rotate(b, q, tables, d), _rotate(b, k, tables, d)
    if cfg.past:
        k = b.op("Concat", f"past_key_values.{index}.key", k, axis=2)
        v = b.op("Concat", f"past_key_values.{index}.value", v, axis=2)
    k = b.op("Identity", k, name=f"present.{index}.key")
    v = b.op("Identity", v, name=f"present.{index}.value")
    k_t = b.op("Transpose", _repeat_kv(b, k, cfg), perm=[0, 1, 3, 2])
    scores = b.op("Div", b.op("MatMul", q, k_t), b.const(math.sqrt(d)))
    scores = b.op("Where", mask, scores, b.const(MASK_VALUE))
    probs = b.op("Softmax", scores, axis=-1)
    context = b.op("MatMul", probs, _repeat_kv(b, v, cfg))
    context = b.op("Transpose", context, perm=[0, 2, 1, 3])
    context = b.op("Reshape", context, b.const([0, 0, cfg.hidden], np.int64))
    return _linear(b, context, f"{name}.o_proj", cfg.hidden, cfg.hidden, False)


def _layer(b: GraphBuilder, x: str, index: int, cfg: LlamaConfig, tables, mask) -> str:
    name, h, i = f"model.layers.{index}", cfg.hidden, cfg.intermediate
    a = rms_norm(b, x, f"{name}.input_layernorm", h, cfg.eps, "input_layernorm")
    with b.scope("self_attn"):
        a = _attention(b, a, index, cfg, tables, mask)
    x = b.op("Add", x, a)
    m = rms_norm(b, x, f"{name}.post_attention_layernorm", h, cfg.eps,
                 "post_attention_layernorm")
    with b.scope("mlp"):
        gate = _linear(b, m, f"{name}.mlp.gate_proj", h, i, False)
        up = _linear(b, m, f"{name}.mlp.up_proj", h, i, False)
        with b.scope("act_fn"):
            gate = b.op("Mul", gate, b.op("Sigmoid", gate))
        m = _linear(b, b.op("Mul", gate, up), f"{name}.mlp.down_proj", i, h, False)
    return b.op("Add", x, m)

"""Llama-style decoders (Llama, Qwen2, Mistral) as HuggingFace's ``LlamaForCausalLM``
exports, in prefill form (``past=0``) or decode-with-past form (``past>0``).

Inputs are ``input_ids`` [batch, sequence], ``attention_mask`` [batch, past + sequence]
(1 for real tokens), ``position_ids`` [batch, sequence] and, in decode form, one
``past_key_values.{i}.key`` / ``.value`` pair per layer [batch, kv_heads, past, head_dim].
Outputs are ``logits`` and, in decode form or with ``use_cache``, ``present.{i}.key`` /
``.value``: the new tokens' keys and values concatenated to the past ones (as the exporters
write the cache).

The pieces are written in the node forms the exporters give (``style`` fields):

- ``norm``: ``"decomposed"`` is LlamaRMSNorm as TorchScript writes it, ``Pow``,
  ``ReduceMean``, ``Add``, ``Sqrt``, ``Reciprocal``, ``Mul``, ``Mul``; ``"onnx"`` is ONNX
  ``RMSNormalization`` (opset 23).
- ``rotary``: ``"decomposed"`` is ``rotate_half`` (``Slice``, ``Neg``, ``Concat``) times
  ``Sin`` plus ``x`` times ``Cos``, the tables computed from ``position_ids``;
  ``"onnx"`` is ONNX ``RotaryEmbedding`` (opset 23) over [positions, head_dim/2] tables.
- ``attention``: ``"eager"`` (``MatMul``, ``Mul`` by the scale, ``Add`` of the mask,
  ``Softmax``, ``MatMul``), ``"sdpa"`` (torch's SDPA export: the scale's square root applied
  to Q and to the transposed K, ``Where(IsNaN(Softmax))`` before the second ``MatMul``) or
  ``"onnx"`` (ONNX ``Attention``, opset 23, prefill only). Grouped-query attention repeats
  the keys and values with ``Unsqueeze``, ``Expand``, ``Reshape`` (``repeat_kv``).
- ``act``: ``"silu"`` (``x * Sigmoid(x)``) or ``"gelu"`` (exact GELU): the gated MLP is
  ``down(act(gate(x)) * up(x))``.

The mask is causal and padding: ``attention_mask`` is cast to bool, combined with a
constant lower-triangular mask by ``And`` and turned into an additive mask by ``Where``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from npuc.compiler.zoo.builder import GraphBuilder
from npuc.compiler.zoo.inputs import InputSpec
from npuc.compiler.zoo.transformer import MASK_VALUE, STD, gelu_erf


@dataclass(frozen=True)
class LlamaConfig:
    """Sizes and export style; the defaults are a small Llama at 128 prefill tokens."""

    vocab_size: int = 32000
    hidden: int = 512
    layers: int = 4
    heads: int = 8
    kv_heads: int = 2
    intermediate: int = 1376
    sequence: int = 128
    past: int = 0
    use_cache: bool = False
    rope_theta: float = 10000.0
    eps: float = 1e-6
    norm: str = "decomposed"
    rotary: str = "decomposed"
    attention: str = "eager"
    act: str = "silu"
    opset: int = 17

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def input_specs(cfg: LlamaConfig) -> list[InputSpec]:
    """Token ids, the attention mask, positions and the past keys and values."""
    s, total = cfg.sequence, cfg.past + cfg.sequence
    specs = [InputSpec("input_ids", "tokens", (None, s), cfg.vocab_size),
             InputSpec("attention_mask", "mask", (None, total)),
             InputSpec("position_ids", "positions", (None, s), offset=cfg.past)]
    for i in range(cfg.layers if cfg.past else 0):
        for kind in ("key", "value"):
            specs.append(InputSpec(f"past_key_values.{i}.{kind}", "image",
                                   (None, cfg.kv_heads, cfg.past, cfg.head_dim)))
    return specs


def build(b: GraphBuilder, cfg: LlamaConfig) -> None:
    """Add the embedding, the decoder layers, the final norm and ``lm_head`` to ``b``."""
    _check(cfg)
    for spec in input_specs(cfg):
        b.input(spec.name, spec.elem_type, spec.shape)
    embed = b.param("model.embed_tokens.weight", b.normal((cfg.vocab_size, cfg.hidden), STD))
    with b.scope("model"):
        with b.scope("embed_tokens"):
            x = b.op("Gather", embed, "input_ids")
        mask = _mask(b, cfg)
        cos, sin = _rotary_tables(b, cfg)
        for i in range(cfg.layers):
            x = _layer(b, x, i, cfg, mask, cos, sin)
        x = rms_norm(b, x, "model.norm", cfg)
    head = b.param("lm_head.weight", b.normal((cfg.hidden, cfg.vocab_size), STD))
    with b.scope("lm_head"):
        b.op("MatMul", x, head, name="logits")
    b.output("logits", TensorProto.FLOAT, (None, cfg.sequence, cfg.vocab_size))
    for i in range(cfg.layers if cfg.past or cfg.use_cache else 0):
        for kind in ("key", "value"):
            b.output(f"present.{i}.{kind}", TensorProto.FLOAT,
                     (None, cfg.kv_heads, cfg.past + cfg.sequence, cfg.head_dim))


def _check(cfg: LlamaConfig) -> None:
    from npuc.ir.errors import NpucError

    if cfg.hidden % cfg.heads or cfg.heads % cfg.kv_heads:
        raise NpucError("llama: hidden must divide by heads and heads by kv_heads")
    if (cfg.norm == "onnx" or cfg.rotary == "onnx" or cfg.attention == "onnx") and \
            cfg.opset < 23:
        raise NpucError("llama: the ONNX RMSNormalization, RotaryEmbedding and Attention "
                        "ops need opset 23 (set opset=23)")
    if cfg.attention == "onnx" and cfg.past:
        raise NpucError("llama: attention='onnx' is built in prefill form only (past=0)")


def rms_norm(b: GraphBuilder, x: str, name: str, cfg: LlamaConfig) -> str:
    """LlamaRMSNorm: ``weight * x * 1/sqrt(mean(x^2) + eps)``."""
    weight = b.param(f"{name}.weight", b.normal((cfg.hidden,), STD, mean=1.0))
    with b.scope(name.rsplit(".", 1)[-1]):
        if cfg.norm == "onnx":
            return b.op("RMSNormalization", x, weight, axis=-1, epsilon=cfg.eps)
        square = b.op("Pow", x, b.const(2.0))
        if cfg.opset >= 18:
            mean = b.op("ReduceMean", square, b.const([-1], np.int64), keepdims=1)
        else:
            mean = b.op("ReduceMean", square, axes=[-1], keepdims=1)
        root = b.op("Sqrt", b.op("Add", mean, b.const(cfg.eps)))
        y = b.op("Mul", x, b.op("Reciprocal", root))
        return b.op("Mul", weight, y)


def _mask(b: GraphBuilder, cfg: LlamaConfig) -> str:
    """The additive [batch, 1, sequence, past + sequence] causal and padding mask."""
    s, total = cfg.sequence, cfg.past + cfg.sequence
    causal = np.tril(np.ones((s, total), dtype=bool), k=cfg.past)[None, None]
    pad = b.op("Cast", b.op("Unsqueeze", "attention_mask", b.const([1, 2], np.int64)),
               to=TensorProto.BOOL)
    keep = b.op("And", b.const(causal, np.bool_), pad)
    return b.op("Where", keep, b.const(0.0), b.const(MASK_VALUE))


def _rotary_tables(b: GraphBuilder, cfg: LlamaConfig) -> tuple[str, str]:
    """cos and sin of ``position_ids * inv_freq``: [batch, sequence, head_dim] for the
    decomposed form, [max positions, head_dim/2] tables for ONNX RotaryEmbedding."""
    d = cfg.head_dim
    inv_freq = 1.0 / cfg.rope_theta ** (np.arange(0, d, 2, dtype=np.float32) / d)
    if cfg.rotary == "onnx":
        angles = np.arange(cfg.past + cfg.sequence, dtype=np.float32)[:, None] * inv_freq
        return b.const(np.cos(angles)), b.const(np.sin(angles))
    with b.scope("rotary_emb"):
        pos = b.op("Cast", b.op("Unsqueeze", "position_ids", b.const([1], np.int64)),
                   to=TensorProto.FLOAT)
        freqs = b.op("MatMul", b.const(inv_freq[None, :, None]), pos)
        freqs = b.op("Transpose", freqs, perm=[0, 2, 1])
        emb = b.op("Concat", freqs, freqs, axis=-1)
        return b.op("Cos", emb), b.op("Sin", emb)


def _layer(b, x, i, cfg, mask, cos, sin) -> str:
    name = f"model.layers.{i}"
    with b.scope("layers", f"layers.{i}"):
        h = rms_norm(b, x, f"{name}.input_layernorm", cfg)
        with b.scope("self_attn"):
            h = _attention(b, h, f"{name}.self_attn", i, cfg, mask, cos, sin)
        x = b.op("Add", x, h)
        h = rms_norm(b, x, f"{name}.post_attention_layernorm", cfg)
        with b.scope("mlp"):
            h = _mlp(b, h, f"{name}.mlp", cfg)
        return b.op("Add", x, h)


def _proj(b, x, name, din, dout) -> str:
    weight = b.param(f"{name}.weight", b.normal((din, dout), STD))
    with b.scope(name.rsplit(".", 1)[-1]):
        return b.op("MatMul", x, weight)


def _heads(b, x, heads, cfg) -> str:
    """[batch, seq, heads*dh] -> [batch, heads, seq, dh]."""
    y = b.op("Reshape", x, b.const([-1, cfg.sequence, heads, cfg.head_dim], np.int64))
    return b.op("Transpose", y, perm=[0, 2, 1, 3])


def _attention(b, x, name, i, cfg, mask, cos, sin) -> str:
    h, d = cfg.hidden, cfg.head_dim
    q = _proj(b, x, f"{name}.q_proj", h, cfg.heads * d)
    k = _proj(b, x, f"{name}.k_proj", h, cfg.kv_heads * d)
    v = _proj(b, x, f"{name}.v_proj", h, cfg.kv_heads * d)
    q, k, v = (_heads(b, t, n, cfg) for t, n in ((q, cfg.heads), (k, cfg.kv_heads),
                                                   (v, cfg.kv_heads)))
    q, k = rotate(b, q, cos, sin, cfg), rotate(b, k, cos, sin, cfg)
    if cfg.past:
        k = b.op("Concat", f"past_key_values.{i}.key", k, axis=2, name=f"present.{i}.key")
        v = b.op("Concat", f"past_key_values.{i}.value", v, axis=2,
                 name=f"present.{i}.value")
    elif cfg.use_cache:
        k = b.op("Identity", k, name=f"present.{i}.key")
        v = b.op("Identity", v, name=f"present.{i}.value")
    if cfg.attention == "onnx":
        y = b.op("Attention", q, k, v, mask, scale=1.0 / math.sqrt(d))
    else:
        k, v = repeat_kv(b, k, cfg), repeat_kv(b, v, cfg)
        y = (_sdpa if cfg.attention == "sdpa" else _eager)(b, q, k, v, mask, d)
    y = b.op("Transpose", y, perm=[0, 2, 1, 3])
    y = b.op("Reshape", y, b.const([-1, cfg.sequence, h], np.int64))
    return _proj(b, y, f"{name}.o_proj", cfg.heads * d, h)


def rotate(b: GraphBuilder, x: str, cos: str, sin: str, cfg: LlamaConfig) -> str:
    """``x * cos + rotate_half(x) * sin`` on [batch, heads, seq, dh]."""
    d = cfg.head_dim
    if cfg.rotary == "onnx":
        return b.op("RotaryEmbedding", x, cos, sin, "position_ids")
    cos_u = b.op("Unsqueeze", cos, b.const([1], np.int64))
    sin_u = b.op("Unsqueeze", sin, b.const([1], np.int64))
    axis = b.const([3], np.int64)
    x1 = b.op("Slice", x, b.const([0], np.int64), b.const([d // 2], np.int64), axis)
    x2 = b.op("Slice", x, b.const([d // 2], np.int64),
              b.const([np.iinfo(np.int64).max], np.int64), axis)
    half = b.op("Concat", b.op("Neg", x2), x1, axis=-1)
    return b.op("Add", b.op("Mul", x, cos_u), b.op("Mul", half, sin_u))


def repeat_kv(b: GraphBuilder, x: str, cfg: LlamaConfig) -> str:
    """HF's ``repeat_kv``: [batch, kv_heads, t, dh] -> [batch, heads, t, dh]."""
    n = cfg.heads // cfg.kv_heads
    if n == 1:
        return x
    t = cfg.past + cfg.sequence
    y = b.op("Unsqueeze", x, b.const([2], np.int64))
    y = b.op("Expand", y, b.const([1, cfg.kv_heads, n, t, cfg.head_dim], np.int64))
    return b.op("Reshape", y, b.const([-1, cfg.heads, t, cfg.head_dim], np.int64))


def _eager(b, q, k, v, mask, d) -> str:
    scores = b.op("MatMul", q, b.op("Transpose", k, perm=[0, 1, 3, 2]))
    scores = b.op("Mul", scores, b.const(1.0 / math.sqrt(d)))
    probs = b.op("Softmax", b.op("Add", scores, mask), axis=-1)
    return b.op("MatMul", probs, v)


def _sdpa(b, q, k, v, mask, d) -> str:
    root = b.op("Sqrt", b.const(1.0 / math.sqrt(d)))
    kt = b.op("Transpose", k, perm=[0, 1, 3, 2])
    scores = b.op("MatMul", b.op("Mul", q, root), b.op("Mul", kt, root))
    probs = b.op("Softmax", b.op("Add", scores, mask), axis=-1)
    probs = b.op("Where", b.op("IsNaN", probs), b.const(0.0), probs)
    return b.op("MatMul", probs, v)


def _mlp(b, x, name, cfg) -> str:
    h, m = cfg.hidden, cfg.intermediate
    gate = _proj(b, x, f"{name}.gate_proj", h, m)
    up = _proj(b, x, f"{name}.up_proj", h, m)
    with b.scope("act_fn"):
        act = b.op("Mul", gate, b.op("Sigmoid", gate)) if cfg.act == "silu" \
            else gelu_erf(b, gate)
    return _proj(b, b.op("Mul", act, up), f"{name}.down_proj", m, h)

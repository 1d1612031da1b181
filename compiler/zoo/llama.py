"""Llama-style decoders (Llama, Qwen2, Mistral) as HuggingFace's ``LlamaForCausalLM``
exports, in prefill form (``past=0``) or decode-with-past form (``past>0``). One builder
serves the small decoders and the published sizes (:mod:`.decoder`).

Inputs are ``input_ids`` [batch, sequence] and, in decode form, one
``past_key_values.{i}.key`` / ``.value`` pair per layer [batch, kv_heads, past, head_dim];
the dynamic form (``form="dynamic"``) adds ``attention_mask`` [batch, past + sequence]
(1 for real tokens) and ``position_ids`` [batch, sequence]. Outputs are ``logits`` and, in
decode form, with ``use_cache`` or in the folded form, ``present.{i}.key`` / ``.value``:
the new tokens' keys and values concatenated to the past ones (as the exporters write the
cache).

The pieces are written in the node forms the exporters give (``style`` fields):

- ``form``: ``"dynamic"`` computes the rotary tables from ``position_ids`` and the mask
  from ``attention_mask`` (``Cast`` to bool, ``And`` with a constant lower-triangular
  mask, ``Where`` into an additive mask); ``"folded"`` is the export with those folded to
  constants: cos/sin tables of the positions, a boolean causal mask applied to the scores
  with ``Where``, scores divided by the square root of the head size, head reshapes with 0
  to copy the batch and sequence sizes.
- ``norm``: ``"decomposed"`` is LlamaRMSNorm as TorchScript writes it, ``Pow``,
  ``ReduceMean``, ``Add``, ``Sqrt``, ``Reciprocal``, ``Mul``, ``Mul``; ``"onnx"`` is ONNX
  ``RMSNormalization`` (opset 23).
- ``rotary``: ``"decomposed"`` is ``rotate_half`` (``Slice``, ``Neg``, ``Concat``) times
  ``Sin`` plus ``x`` times ``Cos``; ``"onnx"`` is ONNX ``RotaryEmbedding`` (opset 23) over
  [positions, head_dim/2] tables.
- ``attention`` (dynamic form): ``"eager"`` (``MatMul``, ``Mul`` by the scale, ``Add`` of
  the mask, ``Softmax``, ``MatMul``), ``"sdpa"`` (torch's SDPA export: the scale's square
  root applied to Q and to the transposed K, ``Where(IsNaN(Softmax))`` before the second
  ``MatMul``) or ``"onnx"`` (ONNX ``Attention``, opset 23, prefill only). Grouped-query
  attention repeats the keys and values with ``Unsqueeze``, ``Expand``, ``Reshape``
  (``repeat_kv``).
- ``act``: ``"silu"`` (``x * Sigmoid(x)``) or ``"gelu"`` (exact GELU): the gated MLP is
  ``down(act(gate(x)) * up(x))``.

Models whose float32 weights pass 2 GB (protobuf's limit for one message) keep them as
external data that reads as zeros (see :func:`npuc.compiler.zoo.model_path`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from npuc.compiler.zoo.builder import GraphBuilder
from npuc.compiler.zoo.inputs import InputSpec
from npuc.compiler.zoo.transformer import MASK_VALUE, STD, gelu_erf

# Past this many float32 parameter bytes the weights are external zeros.
EXTERNAL_BYTES = 2**31
EXTERNAL_FILE = "weights.bin"


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
    tie_embeddings: bool = False
    qkv_bias: bool = False          # Qwen2 adds biases to q, k and v
    form: str = "dynamic"
    norm: str = "decomposed"
    rotary: str = "decomposed"
    attention: str = "eager"
    act: str = "silu"
    opset: int = 17

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def folded(self) -> bool:
        return self.form == "folded"


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
    """Token ids, the attention mask and positions (dynamic form), the past keys and
    values."""
    s, total = cfg.sequence, cfg.past + cfg.sequence
    specs = [InputSpec("input_ids", "tokens", (None, s), cfg.vocab_size)]
    if not cfg.folded:
        specs += [InputSpec("attention_mask", "mask", (None, total)),
                  InputSpec("position_ids", "positions", (None, s), offset=cfg.past)]
    for i in range(cfg.layers if cfg.past else 0):
        for kind in ("key", "value"):
            specs.append(InputSpec(f"past_key_values.{i}.{kind}", "image",
                                   (None, cfg.kv_heads, cfg.past, cfg.head_dim)))
    return specs


def build(b: GraphBuilder, cfg: LlamaConfig) -> None:
    """Add the embedding, the decoder layers, the final norm and ``lm_head`` to ``b``."""
    _check(cfg)
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
        if cfg.folded:
            tables = _folded_tables(b, cfg)
            mask = b.const(np.tril(np.ones((cfg.sequence, total), dtype=bool), cfg.past)[
                None, None], np.bool_)
        else:
            mask = _mask(b, cfg)
            tables = _rotary_tables(b, cfg)
        for i in range(cfg.layers):
            with b.scope(*(() if cfg.folded else ("layers",)), f"layers.{i}"):
                x = _layer(b, x, i, cfg, mask, tables)
        x = rms_norm(b, x, "model.norm", cfg)
    with b.scope("lm_head"):
        if cfg.tie_embeddings:
            head = b.op("Transpose", embed, perm=[1, 0])
        else:
            head = b.weight("lm_head.weight", (h, cfg.vocab_size),
                            lambda: b.normal((h, cfg.vocab_size), STD))
        b.op("MatMul", x, head, name="logits")
    b.output("logits", TensorProto.FLOAT, (None, cfg.sequence, cfg.vocab_size))
    for i in range(cfg.layers if cfg.past or cfg.use_cache or cfg.folded else 0):
        for kind in ("key", "value"):
            b.output(f"present.{i}.{kind}", TensorProto.FLOAT,
                     (None, cfg.kv_heads, total, cfg.head_dim))


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
    if cfg.folded and (cfg.rotary, cfg.attention) != ("decomposed", "eager"):
        raise NpucError("llama: form='folded' is built with the decomposed rotary and "
                        "eager attention")


def rms_norm(b: GraphBuilder, x: str, name: str, cfg: LlamaConfig) -> str:
    """LlamaRMSNorm: ``weight * x * 1/sqrt(mean(x^2) + eps)``."""
    weight = b.weight(f"{name}.weight", (cfg.hidden,),
                      lambda: b.normal((cfg.hidden,), STD, mean=1.0))
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


def _folded_tables(b: GraphBuilder, cfg: LlamaConfig) -> tuple[str, str]:
    """cos and sin of the positions ``past .. past+sequence``, [1, 1, sequence, head_dim]."""
    d = cfg.head_dim
    inv = 1.0 / cfg.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    angles = np.outer(np.arange(cfg.past, cfg.past + cfg.sequence), inv)
    angles = np.concatenate([angles, angles], axis=-1)[None, None]
    return b.const(np.cos(angles)), b.const(np.sin(angles))


def _layer(b, x, i, cfg, mask, tables) -> str:
    name = f"model.layers.{i}"
    h = rms_norm(b, x, f"{name}.input_layernorm", cfg)
    with b.scope("self_attn"):
        h = _attention(b, h, f"{name}.self_attn", i, cfg, mask, tables)
    x = b.op("Add", x, h)
    h = rms_norm(b, x, f"{name}.post_attention_layernorm", cfg)
    with b.scope("mlp"):
        h = _mlp(b, h, f"{name}.mlp", cfg)
    return b.op("Add", x, h)


def _linear(b, x, name, din, dout, bias: bool = False) -> str:
    weight = b.weight(f"{name}.weight", (din, dout), lambda: b.normal((din, dout), STD))
    with b.scope(name.rsplit(".", 1)[-1]):
        y = b.op("MatMul", x, weight)
        if bias:
            y = b.op("Add", b.weight(f"{name}.bias", (dout,), lambda: b.normal((dout,), STD)),
                     y)
        return y


def _heads(b, x, heads, cfg) -> str:
    """[batch, seq, heads*dh] -> [batch, heads, seq, dh]."""
    shape = [0, 0, heads, cfg.head_dim] if cfg.folded else \
        [-1, cfg.sequence, heads, cfg.head_dim]
    y = b.op("Reshape", x, b.const(shape, np.int64))
    return b.op("Transpose", y, perm=[0, 2, 1, 3])


def _attention(b, x, name, i, cfg, mask, tables) -> str:
    h, d = cfg.hidden, cfg.head_dim
    sizes = (("q", cfg.heads), ("k", cfg.kv_heads), ("v", cfg.kv_heads))
    if cfg.folded:  # each projection cut into heads as it is made
        q, k, v = (_heads(b, _linear(b, x, f"{name}.{p}_proj", h, n * d, cfg.qkv_bias), n,
                          cfg) for p, n in sizes)
    else:
        q, k, v = (_linear(b, x, f"{name}.{p}_proj", h, n * d, cfg.qkv_bias)
                   for p, n in sizes)
        q, k, v = (_heads(b, t, n, cfg) for t, (_, n) in zip((q, k, v), sizes))
    q, k = rotate(b, q, *tables, cfg), rotate(b, k, *tables, cfg)
    k, v = _cache(b, k, v, i, cfg)
    if cfg.folded:
        y = _where_masked(b, q, k, v, mask, cfg)
    elif cfg.attention == "onnx":
        y = b.op("Attention", q, k, v, mask, scale=1.0 / math.sqrt(d))
    else:
        k, v = repeat_kv(b, k, cfg), repeat_kv(b, v, cfg)
        y = (_sdpa if cfg.attention == "sdpa" else _eager)(b, q, k, v, mask, d)
    y = b.op("Transpose", y, perm=[0, 2, 1, 3])
    y = b.op("Reshape", y, b.const([0, 0, h] if cfg.folded else [-1, cfg.sequence, h],
                                   np.int64))
    return _linear(b, y, f"{name}.o_proj", cfg.heads * d, h)


def _cache(b, k, v, i, cfg) -> tuple[str, str]:
    """The keys and values attended to: the past ones and the new, named ``present``."""
    if cfg.past and not cfg.folded:
        return (b.op("Concat", f"past_key_values.{i}.key", k, axis=2, name=f"present.{i}.key"),
                b.op("Concat", f"past_key_values.{i}.value", v, axis=2,
                     name=f"present.{i}.value"))
    if cfg.past:
        k = b.op("Concat", f"past_key_values.{i}.key", k, axis=2)
        v = b.op("Concat", f"past_key_values.{i}.value", v, axis=2)
    if cfg.past or cfg.use_cache or cfg.folded:
        k = b.op("Identity", k, name=f"present.{i}.key")
        v = b.op("Identity", v, name=f"present.{i}.value")
    return k, v


def rotate(b: GraphBuilder, x: str, cos: str, sin: str, cfg: LlamaConfig) -> str:
    """``x * cos + rotate_half(x) * sin`` on [batch, heads, seq, dh]."""
    d = cfg.head_dim
    if cfg.rotary == "onnx":
        return b.op("RotaryEmbedding", x, cos, sin, "position_ids")
    if cfg.folded:  # tables already [1, 1, seq, dh]
        first = b.op("Slice", x, b.const([0], np.int64), b.const([d // 2], np.int64),
                     b.const([3], np.int64))
        second = b.op("Slice", x, b.const([d // 2], np.int64), b.const([d], np.int64),
                      b.const([3], np.int64))
    else:
        cos = b.op("Unsqueeze", cos, b.const([1], np.int64))
        sin = b.op("Unsqueeze", sin, b.const([1], np.int64))
        axis = b.const([3], np.int64)
        first = b.op("Slice", x, b.const([0], np.int64), b.const([d // 2], np.int64), axis)
        second = b.op("Slice", x, b.const([d // 2], np.int64),
                      b.const([np.iinfo(np.int64).max], np.int64), axis)
    half = b.op("Concat", b.op("Neg", second), first, axis=-1)
    return b.op("Add", b.op("Mul", x, cos), b.op("Mul", half, sin))


def repeat_kv(b: GraphBuilder, x: str, cfg: LlamaConfig) -> str:
    """HF's ``repeat_kv``: [batch, kv_heads, t, dh] -> [batch, heads, t, dh]."""
    n = cfg.heads // cfg.kv_heads
    if n == 1:
        return x
    t, d = cfg.past + cfg.sequence, cfg.head_dim
    y = b.op("Unsqueeze", x, b.const([2], np.int64))
    y = b.op("Expand", y, b.const([1, 1, n, 1, 1] if cfg.folded else
                                  [1, cfg.kv_heads, n, t, d], np.int64))
    return b.op("Reshape", y, b.const([0, cfg.heads, -1, d] if cfg.folded else
                                      [-1, cfg.heads, t, d], np.int64))


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


def _where_masked(b, q, k, v, mask, cfg) -> str:
    """The folded form's attention: scores divided by sqrt(dh), the boolean mask applied
    with ``Where``."""
    k_t = b.op("Transpose", repeat_kv(b, k, cfg), perm=[0, 1, 3, 2])
    scores = b.op("Div", b.op("MatMul", q, k_t), b.const(math.sqrt(cfg.head_dim)))
    scores = b.op("Where", mask, scores, b.const(MASK_VALUE))
    probs = b.op("Softmax", scores, axis=-1)
    return b.op("MatMul", probs, repeat_kv(b, v, cfg))


def _mlp(b, x, name, cfg) -> str:
    h, m = cfg.hidden, cfg.intermediate
    gate = _linear(b, x, f"{name}.gate_proj", h, m)
    up = _linear(b, x, f"{name}.up_proj", h, m)
    with b.scope("act_fn"):
        act = b.op("Mul", gate, b.op("Sigmoid", gate)) if cfg.act == "silu" \
            else gelu_erf(b, gate)
    return _linear(b, b.op("Mul", act, up), f"{name}.down_proj", m, h)

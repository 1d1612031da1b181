"""Transformer pieces shared by BERT, GPT-2 and ViT, in the decomposed form the
TorchScript exporter writes for HuggingFace's eager attention.

Weights follow HuggingFace's initialisation, N(0, 0.02); biases and LayerNorm parameters
get a little noise around their initial values (0 and 1) so that no pass can mistake
them for the identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from npuc.compiler.zoo.builder import GraphBuilder

STD = 0.02
# The additive "minus infinity" HuggingFace uses for masked positions: finite, so that a
# fully masked row still gives a defined softmax.
MASK_VALUE = float(np.finfo(np.float32).min)


@dataclass(frozen=True)
class EncoderSizes:
    """The sizes of an encoder of BERT and ViT; the defaults are their base models'
    (``bert-base-uncased``, ViT-B/16)."""

    hidden: int = 768
    layers: int = 12
    heads: int = 12
    intermediate: int = 3072


def linear(b: GraphBuilder, x: str, name: str, din: int, dout: int,
           scope: str | None = None) -> str:
    """A Linear on a 3-D input: ``MatMul`` with the [in, out] weight, then ``Add`` of the
    bias placed first, exactly as torch exports it."""
    weight = b.param(f"{name}.weight", b.normal((din, dout), STD))
    bias = b.param(f"{name}.bias", b.normal((dout,), STD))
    with b.scope(scope or name.rsplit(".", 1)[-1]):
        y = b.op("MatMul", x, weight)
        return b.op("Add", bias, y)


def gemm(b: GraphBuilder, x: str, name: str, din: int, dout: int, scope: str,
         output: str | None = None) -> str:
    """A Linear on a 2-D input, which torch exports as ``Gemm`` with ``transB=1``."""
    weight = b.param(f"{name}.weight", b.normal((dout, din), STD))
    bias = b.param(f"{name}.bias", b.normal((dout,), STD))
    with b.scope(scope):
        return b.op("Gemm", x, weight, bias, alpha=1.0, beta=1.0, transB=1, name=output)


def layer_norm(b: GraphBuilder, x: str, name: str, dim: int, eps: float,
               scope: str | None = None, output: str | None = None) -> str:
    """The opset-17 ``LayerNormalization`` op over the last axis."""
    scale = b.param(f"{name}.weight", b.normal((dim,), STD, mean=1.0))
    bias = b.param(f"{name}.bias", b.normal((dim,), STD))
    with b.scope(scope or name.rsplit(".", 1)[-1]):
        return b.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=eps, name=output)


def gelu_erf(b: GraphBuilder, x: str) -> str:
    """Exact GELU as torch exports it: ``x * (1 + Erf(x / sqrt(2))) * 0.5``."""
    y = b.op("Div", x, b.const(math.sqrt(2.0)))
    y = b.op("Erf", y)
    y = b.op("Add", y, b.const(1.0))
    y = b.op("Mul", x, y)
    return b.op("Mul", y, b.const(0.5))


def gelu_tanh(b: GraphBuilder, x: str) -> str:
    """GPT-2's ``gelu_new``: ``0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)))``, with
    the cube as ``Pow``, in the order the Python expression evaluates."""
    half_x = b.op("Mul", b.const(0.5), x)
    cube = b.op("Pow", x, b.const(3.0))
    y = b.op("Mul", b.const(0.044715), cube)
    y = b.op("Add", x, y)
    y = b.op("Mul", b.const(math.sqrt(2.0 / math.pi)), y)
    y = b.op("Tanh", y)
    y = b.op("Add", b.const(1.0), y)
    return b.op("Mul", half_x, y)


def dynamic_dims(b: GraphBuilder, x: str, axes: list[int]) -> list[str]:
    """The sizes of ``x`` along ``axes`` as 1-D tensors, by Shape -> Gather -> Unsqueeze,
    the chain the exporter writes for every ``x.size(i)`` under dynamic axes."""
    dims = []
    for axis in axes:
        shape = b.op("Shape", x)
        size = b.op("Gather", shape, b.const(axis, np.int64), axis=0)
        dims.append(b.op("Unsqueeze", size, b.const([0], np.int64)))
    return dims


def heads_shape(b: GraphBuilder, x: str, tail: list[int], mode: str) -> str:
    """The target shape for reshaping ``x`` [batch, seq, ...] to [batch, seq, *tail].

    ``mode`` picks how the batch and sequence sizes are written: ``"dynamic"`` reads them
    with Shape/Gather/Unsqueeze and Concats (as BERT's export does), ``"zero"`` copies
    them with 0 entries, ``"minus_one"`` lets Reshape infer the batch (the sequence must
    then be passed as ``tail``'s static prefix by the caller).
    """
    if mode == "dynamic":
        parts = [*dynamic_dims(b, x, [0, 1]), b.const(tail, np.int64)]
        return b.op("Concat", *parts, axis=0)
    if mode == "zero":
        return b.const([0, 0, *tail], np.int64)
    return b.const([-1, *tail], np.int64)


def split_heads(b: GraphBuilder, x: str, shape: str, perm: list[int]) -> str:
    """[batch, seq, hidden] -> [batch, heads, seq, dh] (or [batch, heads, dh, seq] for keys,
    where the exporter has merged ``permute`` and ``transpose(-1, -2)`` into one)."""
    y = b.op("Reshape", x, shape)
    return b.op("Transpose", y, perm=perm)


def attend(b: GraphBuilder, q: str, k_t: str, v: str, head_dim: int,
           additive_mask: str | None = None, causal_mask: str | None = None) -> str:
    """softmax(Q·Kᵀ / sqrt(dh) + mask)·V on [batch, heads, seq, dh] tensors.

    ``additive_mask`` is added to the scores (BERT); ``causal_mask`` is a boolean tensor
    that keeps scores where true and puts ``MASK_VALUE`` elsewhere via ``Where`` (GPT-2).
    """
    scores = b.op("MatMul", q, k_t)
    scores = b.op("Div", scores, b.const(math.sqrt(head_dim)))
    if causal_mask is not None:
        scores = b.op("Where", causal_mask, scores, b.const(MASK_VALUE))
    if additive_mask is not None:
        scores = b.op("Add", scores, additive_mask)
    probs = b.op("Softmax", scores, axis=-1)
    return b.op("MatMul", probs, v)


def merge_heads(b: GraphBuilder, context: str, hidden: int, mode: str,
                sequence: int) -> str:
    """[batch, heads, seq, dh] -> [batch, seq, hidden], the target shape written as in
    :func:`heads_shape` and, when dynamic, read from the transposed tensor as torch does."""
    y = b.op("Transpose", context, perm=[0, 2, 1, 3])
    if mode == "dynamic":
        parts = [*dynamic_dims(b, y, [0, 1]), b.const([hidden], np.int64)]
        shape = b.op("Concat", *parts, axis=0)
    elif mode == "zero":
        shape = b.const([0, 0, hidden], np.int64)
    else:
        shape = b.const([-1, sequence, hidden], np.int64)
    return b.op("Reshape", y, shape)


def self_attention(b: GraphBuilder, x: str, prefix: str, hidden: int, heads: int,
                   mode: str, sequence: int, additive_mask: str | None = None) -> str:
    """HuggingFace's BertSelfAttention/ViTSelfAttention: separate ``query``, ``key`` and
    ``value`` Linears under ``prefix``, heads split, attention, heads merged."""
    head_dim = hidden // heads
    q = linear(b, x, f"{prefix}.query", hidden, hidden)
    k = linear(b, x, f"{prefix}.key", hidden, hidden)
    v = linear(b, x, f"{prefix}.value", hidden, hidden)
    tail = [heads, head_dim] if mode != "minus_one" else [sequence, heads, head_dim]
    k_t = split_heads(b, k, heads_shape(b, k, tail, mode), [0, 2, 3, 1])
    v = split_heads(b, v, heads_shape(b, v, tail, mode), [0, 2, 1, 3])
    q = split_heads(b, q, heads_shape(b, q, tail, mode), [0, 2, 1, 3])
    context = attend(b, q, k_t, v, head_dim, additive_mask=additive_mask)
    return merge_heads(b, context, hidden, mode, sequence)


def intermediate(b: GraphBuilder, x: str, name: str, hidden: int, size: int) -> str:
    """HF's ``BertIntermediate`` (and ViT's): ``dense`` to ``size``, then exact GELU."""
    with b.scope("intermediate"):
        y = linear(b, x, f"{name}.intermediate.dense", hidden, size)
        with b.scope("intermediate_act_fn"):
            return gelu_erf(b, y)

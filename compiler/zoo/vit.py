"""ViT as HuggingFace's ``ViTForImageClassification`` exports: a strided Conv cuts the
image into patches, which are flattened to tokens (through a Shape/Gather/Concat chain,
as ``flatten(2)`` exports under a dynamic batch), a class token is expanded to the batch
and prepended, position embeddings added, then pre-norm encoder layers with erf GELU, a
final LayerNorm, and a Gemm head on the class token.

Head reshapes use constant target shapes with 0 to copy the batch and sequence sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from npuc.compiler.zoo.builder import GraphBuilder
from npuc.compiler.zoo.inputs import InputSpec
from npuc.compiler.zoo.transformer import (
    STD,
    EncoderSizes,
    dynamic_dims,
    gemm,
    intermediate,
    layer_norm,
    linear,
    self_attention,
)

EPS = 1e-12


@dataclass(frozen=True)
class ViTConfig(EncoderSizes):
    """Sizes of the model; the defaults are ViT-B/16 at 224x224 with 1000 classes."""

    image_size: int = 224
    patch: int = 16
    num_classes: int = 1000


def input_specs(cfg: ViTConfig) -> list[InputSpec]:
    """One NCHW float image batch named ``pixel_values``."""
    return [InputSpec("pixel_values", "image", (None, 3, cfg.image_size, cfg.image_size))]


def build(b: GraphBuilder, cfg: ViTConfig) -> None:
    """Add the patch embeddings, encoder, final LayerNorm and classifier to ``b``."""
    spec = input_specs(cfg)[0]
    b.input(spec.name, spec.elem_type, spec.shape)
    tokens = (cfg.image_size // cfg.patch) ** 2 + 1
    with b.scope("vit"):
        x = _embeddings(b, cfg, tokens)
        with b.scope("encoder"):
            for index in range(cfg.layers):
                x = _layer(b, x, index, cfg, tokens)
        x = layer_norm(b, x, "vit.layernorm", cfg.hidden, EPS, scope="layernorm")
    first = b.op("Gather", x, b.const(0, np.int64), axis=1)
    gemm(b, first, "classifier", cfg.hidden, cfg.num_classes, scope="classifier",
         output="logits")
    b.output("logits", TensorProto.FLOAT, (None, cfg.num_classes))


def _embeddings(b: GraphBuilder, cfg: ViTConfig, tokens: int) -> str:
    h, p = cfg.hidden, cfg.patch
    prefix = "vit.embeddings"
    cls_token = b.param(f"{prefix}.cls_token", b.normal((1, 1, h), STD))
    positions = b.param(f"{prefix}.position_embeddings", b.normal((1, tokens, h), STD))
    weight = b.param(f"{prefix}.patch_embeddings.projection.weight",
                     b.normal((h, 3, p, p), STD))
    bias = b.param(f"{prefix}.patch_embeddings.projection.bias", b.normal((h,), STD))
    with b.scope("embeddings"):
        with b.scope("patch_embeddings"):
            with b.scope("projection"):
                x = b.op("Conv", "pixel_values", weight, bias, dilations=[1, 1], group=1,
                         kernel_shape=[p, p], pads=[0, 0, 0, 0], strides=[p, p])
            # flatten(2): keep batch and channels, merge the patch grid.
            shape = b.op("Concat", *dynamic_dims(b, x, [0, 1]), b.const([-1], np.int64),
                         axis=0)
            x = b.op("Reshape", x, shape)
            x = b.op("Transpose", x, perm=[0, 2, 1])
        # cls_token.expand(batch, -1, -1): ONNX Expand broadcasts, so -1 becomes 1.
        batch = dynamic_dims(b, "pixel_values", [0])[0]
        expand_shape = b.op("Concat", batch, b.const([1, 1], np.int64), axis=0)
        cls = b.op("Expand", cls_token, expand_shape)
        x = b.op("Concat", cls, x, axis=1)
        return b.op("Add", x, positions)


def _layer(b: GraphBuilder, x: str, index: int, cfg: ViTConfig, tokens: int) -> str:
    h, name = cfg.hidden, f"vit.encoder.layer.{index}"
    with b.scope(f"layer.{index}"):
        a = layer_norm(b, x, f"{name}.layernorm_before", h, EPS)
        with b.scope("attention"):
            with b.scope("attention"):
                a = self_attention(b, a, f"{name}.attention.attention", h, cfg.heads,
                                   "zero", tokens)
            with b.scope("output"):
                a = linear(b, a, f"{name}.attention.output.dense", h, h)
        x = b.op("Add", a, x)
        y = layer_norm(b, x, f"{name}.layernorm_after", h, EPS)
        y = intermediate(b, y, name, h, cfg.intermediate)
        with b.scope("output"):
            y = linear(b, y, f"{name}.output.dense", cfg.intermediate, h)
            return b.op("Add", y, x)

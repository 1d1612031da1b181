"""MobileNetV2 as torchvision's ``mobilenet_v2`` exports: inverted residual blocks of
1x1 expansion, 3x3 depthwise conv (``group`` = channels) and 1x1 linear projection,
ReLU6 as ``Clip`` with constant bounds, BatchNorm left unfolded."""

from __future__ import annotations

from dataclasses import dataclass

from onnx import TensorProto

from npuc.compiler.zoo.builder import GraphBuilder
from npuc.compiler.zoo.cnn import batch_norm, classifier_head, conv, relu6
from npuc.compiler.zoo.inputs import InputSpec

# (expansion t, output channels c, repeats n, first stride s), the paper's Table 2.
MOBILENETV2_BLOCKS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
# A residual branch ends in a linear projection; a small BatchNorm weight there keeps
# the running sum of a stage from growing, as it does in trained networks.
BRANCH_GAMMA = 0.3


@dataclass(frozen=True)
class MobileNetV2Config:
    """Block table, stem and last widths, input size and number of classes."""

    blocks: tuple[tuple[int, int, int, int], ...] = MOBILENETV2_BLOCKS
    first_channels: int = 32
    last_channels: int = 1280
    image_size: int = 224
    num_classes: int = 1000


def input_specs(cfg: MobileNetV2Config) -> list[InputSpec]:
    """One NCHW float image batch named ``input``."""
    return [InputSpec("input", "image", (None, 3, cfg.image_size, cfg.image_size))]


def build(b: GraphBuilder, cfg: MobileNetV2Config) -> None:
    """Add the whole network to ``b``: ``features.0`` to ``features.N``, then the head."""
    x = b.input("input", TensorProto.FLOAT, input_specs(cfg)[0].shape)
    with b.scope("features"):
        x = _conv_bn_relu6(b, x, "features.0", 3, cfg.first_channels, 3, stride=2)
        channels, index = cfg.first_channels, 1
        for expansion, cout, repeats, first_stride in cfg.blocks:
            for repeat in range(repeats):
                stride = first_stride if repeat == 0 else 1
                x = _inverted_residual(b, x, f"features.{index}", channels, cout, stride,
                                       expansion)
                channels, index = cout, index + 1
        x = _conv_bn_relu6(b, x, f"features.{index}", channels, cfg.last_channels, 1)
    classifier_head(b, x, "classifier.1", cfg.last_channels, cfg.num_classes,
                    scope="classifier")
    b.output("output", TensorProto.FLOAT, (None, cfg.num_classes))


def _conv_bn_relu6(b: GraphBuilder, x: str, name: str, cin: int, cout: int, kernel: int,
                   stride: int = 1, groups: int = 1, scope: str | None = None) -> str:
    """torchvision's Conv2dNormActivation: children ``0`` (conv), ``1`` (bn), ``2`` (act)."""
    seg = scope or name
    with b.scope(seg):
        x = conv(b, x, f"{name}.0", cin, cout, kernel, stride=stride, groups=groups,
                 scope=f"{seg}.0")
        x = batch_norm(b, x, f"{name}.1", cout, scope=f"{seg}.1")
        return relu6(b, x, f"{seg}.2")


def _inverted_residual(b: GraphBuilder, x: str, name: str, cin: int, cout: int,
                       stride: int, expansion: int) -> str:
    hidden = cin * expansion
    residual = stride == 1 and cin == cout
    with b.scope(name), b.scope("conv"):
        y, child = x, 0
        if expansion != 1:
            y = _conv_bn_relu6(b, y, f"{name}.conv.0", cin, hidden, 1, scope="conv.0")
            child = 1
        y = _conv_bn_relu6(b, y, f"{name}.conv.{child}", hidden, hidden, 3, stride=stride,
                           groups=hidden, scope=f"conv.{child}")
        y = conv(b, y, f"{name}.conv.{child + 1}", hidden, cout, 1, gain=1.0,
                 scope=f"conv.{child + 1}")
        y = batch_norm(b, y, f"{name}.conv.{child + 2}", cout,
                       gamma=BRANCH_GAMMA if residual else 1.0, scope=f"conv.{child + 2}")
    if not residual:
        return y
    with b.scope(name):
        return b.op("Add", x, y)

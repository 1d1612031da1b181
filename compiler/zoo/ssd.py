"""SSD-MobileNet v1 as MLPerf's ``ssd-mobilenet`` (TensorFlow's ssd_mobilenet_v1_coco) up
to its box predictors: a MobileNetV1 of depthwise-separable convolutions (ReLU6 as
``Clip``, BatchNorm left unfolded) on a 300x300 image, four extra feature layers, and a
1x1 box and class predictor on each of the six feature maps (3 anchors on the first, 6 on
the others: 1917 in all, 91 COCO classes). Anchor decoding and non-maximum suppression
run on the host and are not part of the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from npuc.compiler.zoo.builder import GraphBuilder
from npuc.compiler.zoo.cnn import batch_norm, conv, relu6
from npuc.compiler.zoo.inputs import InputSpec

# (output channels, stride) of MobileNetV1's 13 depthwise-separable blocks.
MOBILENETV1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                      (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2),
                      (1024, 1))
# (1x1 channels, 3x3 stride-2 channels) of the extra feature layers.
EXTRAS = ((256, 512), (128, 256), (128, 256), (64, 128))


@dataclass(frozen=True)
class SSDConfig:
    """Input size, classes, width multiplier (channels are scaled by it)."""

    image_size: int = 300
    num_classes: int = 91
    width: float = 1.0


def input_specs(cfg: SSDConfig) -> list[InputSpec]:
    """One NCHW float image batch named ``image``."""
    return [InputSpec("image", "image", (None, 3, cfg.image_size, cfg.image_size))]


def _w(cfg: SSDConfig, channels: int) -> int:
    return max(8, int(channels * cfg.width))


def _conv_bn(b, x, name, cin, cout, kernel, stride=1, groups=1):
    with b.scope(name):
        x = conv(b, x, f"{name}.conv", cin, cout, kernel, stride=stride, groups=groups,
                 scope="conv")
        x = batch_norm(b, x, f"{name}.bn", cout, scope="bn")
        return relu6(b, x, "relu6")


def build(b: GraphBuilder, cfg: SSDConfig) -> None:
    """Add the backbone, the extra layers and the predictors to ``b``."""
    x = b.input("image", TensorProto.FLOAT, input_specs(cfg)[0].shape)
    size, features = cfg.image_size, []
    channels = _w(cfg, 32)
    x = _conv_bn(b, x, "backbone.conv0", 3, channels, 3, stride=2)
    size = -(-size // 2)
    for i, (cout, stride) in enumerate(MOBILENETV1_BLOCKS, 1):
        cout = _w(cfg, cout)
        x = _conv_bn(b, x, f"backbone.conv{i}.depthwise", channels, channels, 3, stride,
                     groups=channels)
        x = _conv_bn(b, x, f"backbone.conv{i}.pointwise", channels, cout, 1)
        channels, size = cout, -(-size // stride)
        if i in (11, 13):  # the feature maps the predictors read: 19x19 and 10x10
            features.append((x, channels, size))
    for i, (mid, cout) in enumerate(EXTRAS):
        mid, cout = _w(cfg, mid), _w(cfg, cout)
        x = _conv_bn(b, x, f"extras.{i}.reduce", channels, mid, 1)
        x = _conv_bn(b, x, f"extras.{i}.expand", mid, cout, 3, stride=2)
        channels, size = cout, -(-size // 2)
        features.append((x, channels, size))
    boxes, scores = [], []
    for i, (f, c, s) in enumerate(features):
        anchors = 3 if i == 0 else 6
        boxes.append(_predict(b, f, f"predictors.{i}.box", c, anchors, 4, s))
        scores.append(_predict(b, f, f"predictors.{i}.class", c, anchors, cfg.num_classes, s))
    total = sum((3 if i == 0 else 6) * s * s for i, (_, _, s) in enumerate(features))
    b.op("Concat", *boxes, axis=1, name="boxes")
    b.op("Concat", *scores, axis=1, name="scores")
    b.output("boxes", TensorProto.FLOAT, (None, total, 4))
    b.output("scores", TensorProto.FLOAT, (None, total, cfg.num_classes))


def _predict(b, x, name, channels, anchors, values, size) -> str:
    """A 1x1 conv with bias to anchors x values channels, as [batch, anchors, values]."""
    with b.scope(name):
        y = conv(b, x, name, channels, anchors * values, 1, gain=1.0, bias=True,
                 scope="conv")
        y = b.op("Transpose", y, perm=[0, 2, 3, 1])
        return b.op("Reshape", y, b.const([-1, size * size * anchors, values], np.int64))

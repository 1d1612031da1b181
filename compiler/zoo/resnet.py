"""ResNet with bottleneck blocks, as torchvision's ``resnet50`` exports (v1.5: the stride
is on the 3x3 conv), BatchNorm left unfolded."""

from __future__ import annotations

from dataclasses import dataclass

from onnx import TensorProto

from npuc.compiler.zoo.builder import GraphBuilder
from npuc.compiler.zoo.cnn import batch_norm, classifier_head, conv, relu
from npuc.compiler.zoo.inputs import InputSpec

EXPANSION = 4
# Trained ResNets end each residual branch with a small BatchNorm weight; without it the
# sum of sixteen blocks would grow the activations a hundredfold.
BRANCH_GAMMA = 0.2


@dataclass(frozen=True)
class ResNetConfig:
    """Blocks per stage, the first stage's width, input size and number of classes."""

    layers: tuple[int, ...] = (3, 4, 6, 3)
    width: int = 64
    image_size: int = 224
    num_classes: int = 1000


def input_specs(cfg: ResNetConfig) -> list[InputSpec]:
    """One NCHW float image batch named ``input``."""
    return [InputSpec("input", "image", (None, 3, cfg.image_size, cfg.image_size))]


def build(b: GraphBuilder, cfg: ResNetConfig) -> None:
    """Add the whole network to ``b``: stem, four stages, pooling and the ``fc`` head."""
    x = b.input("input", TensorProto.FLOAT, input_specs(cfg)[0].shape)
    x = conv(b, x, "conv1", 3, cfg.width, 7, stride=2)
    x = relu(b, batch_norm(b, x, "bn1", cfg.width))
    with b.scope("maxpool"):
        x = b.op("MaxPool", x, ceil_mode=0, dilations=[1, 1], kernel_shape=[3, 3],
                 pads=[1, 1, 1, 1], strides=[2, 2])
    channels = cfg.width
    for stage, blocks in enumerate(cfg.layers):
        planes = cfg.width * 2**stage
        layer = f"layer{stage + 1}"
        with b.scope(layer):
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                x = _bottleneck(b, x, f"{layer}.{index}", channels, planes, stride)
                channels = planes * EXPANSION
    classifier_head(b, x, "fc", channels, cfg.num_classes, pool_scope="avgpool")
    b.output("output", TensorProto.FLOAT, (None, cfg.num_classes))


def _bottleneck(b: GraphBuilder, x: str, name: str, cin: int, planes: int,
                stride: int) -> str:
    out_channels = planes * EXPANSION
    with b.scope(name):
        y = conv(b, x, f"{name}.conv1", cin, planes, 1)
        y = relu(b, batch_norm(b, y, f"{name}.bn1", planes))
        y = conv(b, y, f"{name}.conv2", planes, planes, 3, stride=stride)
        y = relu(b, batch_norm(b, y, f"{name}.bn2", planes), "relu_1")
        y = conv(b, y, f"{name}.conv3", planes, out_channels, 1, gain=1.0)
        y = batch_norm(b, y, f"{name}.bn3", out_channels, gamma=BRANCH_GAMMA)
        identity = x
        if stride != 1 or cin != out_channels:
            with b.scope("downsample"):
                identity = conv(b, x, f"{name}.downsample.0", cin, out_channels, 1,
                                stride=stride, gain=1.0, scope="downsample.0")
                identity = batch_norm(b, identity, f"{name}.downsample.1", out_channels,
                                      scope="downsample.1")
        y = b.op("Add", y, identity)
        return relu(b, y, "relu_2")

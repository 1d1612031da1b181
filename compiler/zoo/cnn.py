"""Convolution layers shared by the CNNs, in the form torch exports an eval-mode model
when BatchNorm is kept (``training=TrainingMode.PRESERVE``, ``do_constant_folding=False``).

The default export folds each BatchNorm into the Conv before it; the zoo keeps them apart
(Conv without bias, then BatchNormalization, then the activation) so that the compiler's
own folding has work to do.
"""

from __future__ import annotations

import numpy as np

from npuc.compiler.zoo.builder import GraphBuilder


def conv(b: GraphBuilder, x: str, name: str, cin: int, cout: int, kernel: int,
         stride: int = 1, groups: int = 1, gain: float = 2.0, bias: bool = False,
         scope: str | None = None) -> str:
    """A Conv with ``same``-style padding (kernel // 2), like torchvision's convs.

    ``name`` is the state-dict prefix (``layer1.0.conv1``); ``scope`` the node scope
    segment, by default the last part of ``name``.
    """
    pad = kernel // 2
    weight = b.param(f"{name}.weight", b.kaiming((cout, cin // groups, kernel, kernel), gain))
    inputs = [x, weight]
    if bias:
        inputs.append(b.param(f"{name}.bias", b.normal((cout,), 0.02)))
    with b.scope(scope or name.rsplit(".", 1)[-1]):
        return b.op("Conv", *inputs, dilations=[1, 1], group=groups,
                    kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride] * 2)


def batch_norm(b: GraphBuilder, x: str, name: str, channels: int, gamma: float = 1.0,
               scope: str | None = None) -> str:
    """An eval-mode BatchNormalization with plausible trained statistics.

    Running means are small and running variances near 1, so the layer roughly keeps the
    scale it is given; ``gamma`` sets the typical scale of the learnt weight (trained
    residual networks end their branches with small ones, which keeps the sum bounded).
    """
    weight = b.normal((channels,), 0.1 * gamma, mean=gamma)
    bias = b.normal((channels,), 0.05)
    mean = b.normal((channels,), 0.05)
    var = b.uniform((channels,), 0.8, 1.2)
    inputs = [x]
    for key, value in (("weight", weight), ("bias", bias), ("running_mean", mean),
                       ("running_var", var)):
        inputs.append(b.param(f"{name}.{key}", value))
    with b.scope(scope or name.rsplit(".", 1)[-1]):
        return b.op("BatchNormalization", *inputs, epsilon=1e-5, momentum=0.9)


def relu(b: GraphBuilder, x: str, scope: str = "relu") -> str:
    """ReLU, named after the module that applies it."""
    with b.scope(scope):
        return b.op("Relu", x)


def relu6(b: GraphBuilder, x: str, scope: str) -> str:
    """ReLU6 the way opset 11+ exports it: Clip with its bounds as constant inputs."""
    with b.scope(scope):
        low = b.const(0.0)
        high = b.const(6.0)
        return b.op("Clip", x, low, high)


def classifier_head(b: GraphBuilder, x: str, name: str, features: int, classes: int,
                    scope: str | None = None, pool_scope: str | None = None) -> str:
    """GlobalAveragePool, Flatten and the final Linear exported as Gemm into ``output``.

    The Linear layer gets torch's default initialisation, U(±1/sqrt(in)).
    """
    if pool_scope:
        with b.scope(pool_scope):
            pooled = b.op("GlobalAveragePool", x)
    else:
        pooled = b.op("GlobalAveragePool", x)
    flat = b.op("Flatten", pooled, axis=1)
    bound = 1.0 / np.sqrt(features)
    weight = b.param(f"{name}.weight", b.uniform((classes, features), -bound, bound))
    bias = b.param(f"{name}.bias", b.uniform((classes,), -bound, bound))
    with b.scope(scope or name):
        return b.op("Gemm", flat, weight, bias, alpha=1.0, beta=1.0, transB=1,
                    name="output")

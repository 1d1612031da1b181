"""Operators that draw at random: Dropout (in training mode), RandomNormal,
RandomUniform (and their Like forms), Bernoulli, Multinomial.

They draw from ``ctx.rng`` (the ``seed`` attribute is ignored, so that a whole run is
reproducible from one generator).
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from . import kernel
from .checks import accepts, unsupported


@kernel("Dropout")
def dropout(inputs, attrs, ctx):
    x = inputs[0]
    if ctx.opset >= 12:
        ratio = float(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else 0.5
        training = bool(inputs[2]) if len(inputs) > 2 and inputs[2] is not None else False
    else:
        ratio, training = attrs.get("ratio", 0.5), False
    if not training or ratio == 0:
        return [x.copy(), np.ones(x.shape, dtype=bool)][:ctx.num_outputs]
    mask = ctx.rng.uniform(size=x.shape) >= ratio
    return [(x * mask / (1 - ratio)).astype(x.dtype), mask][:ctx.num_outputs]


def _dtype(attrs, default):
    code = attrs.get("dtype")
    return np.dtype(helper.tensor_dtype_to_np_dtype(code)) if code else np.dtype(default)


def _draw(inputs, attrs, ctx, draw):
    """A tensor of the shape (and dtype) of the input, or of the attributes, drawn by
    ``draw(size)``."""
    shape = inputs[0].shape if inputs else tuple(attrs["shape"])
    dt = _dtype(attrs, inputs[0].dtype if inputs else np.float32)
    return [draw(shape).astype(dt)]


@kernel("RandomNormal", "RandomNormalLike")
def random_normal(inputs, attrs, ctx):
    return _draw(inputs, attrs, ctx, lambda size: ctx.rng.normal(
        attrs.get("mean", 0.0), attrs.get("scale", 1.0), size=size))


@kernel("RandomUniform", "RandomUniformLike")
def random_uniform(inputs, attrs, ctx):
    return _draw(inputs, attrs, ctx, lambda size: ctx.rng.uniform(
        attrs.get("low", 0.0), attrs.get("high", 1.0), size=size))


@kernel("Bernoulli")
@accepts("float")
def bernoulli(inputs, attrs, ctx):
    p = inputs[0]
    return [(ctx.rng.uniform(size=p.shape) < p).astype(_dtype(attrs, p.dtype))]


@kernel("Multinomial")
def multinomial(inputs, attrs, ctx):
    logits = inputs[0].astype(np.float64)
    n = attrs.get("sample_size", 1)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    u = ctx.rng.uniform(size=(logits.shape[0], n))
    out = np.stack([np.searchsorted(cdf[b], u[b], side="right") for b in range(logits.shape[0])])
    out = np.minimum(out, logits.shape[1] - 1)
    dt = _dtype(attrs, np.int32)
    if dt not in (np.int32, np.int64):
        raise unsupported(ctx, f"Multinomial output {dt}")
    return [out.astype(dt)]

"""Pooling over the whole image: GlobalAveragePool, GlobalMaxPool, GlobalLpPool (one value
per image and channel, in the input dtype; averages and norms accumulate in float64)."""

from __future__ import annotations

import numpy as np

from . import kernel
from .checks import accepts


def _spatial_axes(x):
    return tuple(range(2, x.ndim))


@kernel("GlobalAveragePool")
@accepts("float")
def global_average_pool(inputs, attrs, ctx):
    x = inputs[0]
    return [x.mean(axis=_spatial_axes(x), keepdims=True, dtype=np.float64).astype(x.dtype)]


@kernel("GlobalMaxPool")
@accepts("float", "int")
def global_max_pool(inputs, attrs, ctx):
    x = inputs[0]
    return [x.max(axis=_spatial_axes(x), keepdims=True)]


@kernel("GlobalLpPool")
@accepts("float")
def global_lp_pool(inputs, attrs, ctx):
    x = inputs[0]
    p = attrs.get("p", 2)
    s = (np.abs(x.astype(np.float64)) ** p).sum(axis=_spatial_axes(x), keepdims=True)
    return [(s ** (1.0 / p)).astype(x.dtype)]

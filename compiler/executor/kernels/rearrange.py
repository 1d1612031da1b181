"""Block rearrangements: DepthToSpace and SpaceToDepth move channels to and from space;
CenterCropPad crops or pads around the centre."""

from __future__ import annotations

import numpy as np

from npuc.ir.errors import NpucError

from .checks import checked_kernel, normalize_axes


@checked_kernel("DepthToSpace")
def depth_to_space(inputs, attrs, ctx):
    """ONNX DepthToSpace (DCR or CRD ordering)."""
    x = inputs[0]
    b = attrs["blocksize"]
    n, c, h, w = x.shape
    if c % (b * b):
        raise NpucError(f"{ctx.describe()}: {c} channels do not divide by blocksize² {b * b}")
    if attrs.get("mode", "DCR") == "DCR":
        t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [t.reshape(n, c // (b * b), h * b, w * b)]


@checked_kernel("SpaceToDepth")
def space_to_depth(inputs, attrs, ctx):
    """ONNX SpaceToDepth (DCR, or CRD from opset 28)."""
    x = inputs[0]
    b = attrs["blocksize"]
    n, c, h, w = x.shape
    if h % b or w % b:
        raise NpucError(f"{ctx.describe()}: spatial size {h}x{w} does not divide by {b}")
    t = x.reshape(n, c, h // b, b, w // b, b)
    if attrs.get("mode", "DCR") == "DCR":
        t = t.transpose(0, 3, 5, 1, 2, 4)
    else:
        t = t.transpose(0, 1, 3, 5, 2, 4)
    return [t.reshape(n, c * b * b, h // b, w // b)]


@checked_kernel("CenterCropPad")
def center_crop_pad(inputs, attrs, ctx):
    """ONNX CenterCropPad: crop or zero-pad each axis around its centre."""
    x, shape = inputs
    shape = [int(s) for s in shape.reshape(-1)]
    axes = normalize_axes(attrs.get("axes", range(x.ndim)), x.ndim, ctx)
    if len(axes) != len(shape):
        raise NpucError(f"{ctx.describe()}: {len(shape)} sizes for {len(axes)} axes")
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    out_shape = list(x.shape)
    for a, s in zip(axes, shape):
        d = x.shape[a]
        out_shape[a] = s
        if s < d:
            off = (d - s) // 2
            src[a] = slice(off, off + s)
        elif s > d:
            off = (s - d) // 2
            dst[a] = slice(off, off + d)
    out = np.zeros(out_shape, dtype=x.dtype)
    out[tuple(dst)] = x[tuple(src)]
    return [out]

"""Convolutions: Conv, ConvTranspose, Col2Im.

The general convolution is im2col + one BLAS matrix product per (image, group): the
columns are gathered with one strided numpy copy per kernel offset, and padding is never
materialised (out-of-range window positions stay zero in the column buffer). Depthwise
convolutions (one input channel per group) take the direct Numba loops of
:mod:`.conv_depthwise` instead.

The numerics live in functions that take explicit (possibly strided) input views,
explicit padding and an optional output buffer, so that the tile simulator can run them
on a window of a tensor; the registered kernels are thin wrappers that read attributes.
The integer convolutions (ConvInteger, QLinearConv) live in ``quant``; DeformConv in
``vision``; padding and im2col in ``windows``.
"""

from __future__ import annotations

import numpy as np

from . import accumulate, conv_depthwise, conv_prepared, kernel
from .checks import accepts, unsupported
from .conv_columns import conv2d_columns
from .epilogue import Epilogue
from .windows import col2im_add, conv_geometry, conv_out_shape, im2col


def conv_nd(x, w, b=None, strides=None, pads=None, dilations=None, group=1, out=None,
            activation=None):
    """Convolution of ``x`` (N, C, *spatial) with ``w`` (M, C/group, *kernel), plus the
    bias ``b``, then ``activation`` (an :class:`~.epilogue.Epilogue` without bias: a
    FusedConv's, or None; its residual, if any, is added before its activation).

    ``pads`` is ``[begin..., end...]``; ``x`` may be any strided view. Floating point
    only (integer convolutions go through :func:`conv_integer`). In a float32-products
    run a float32 result of 2 spatial dimensions is computed in blocks of output
    positions with the bias and activation applied to each block
    (:mod:`.conv_columns`); otherwise the bias and the activation are separate passes.
    """
    nd = x.ndim - 2
    strides = list(strides or [1] * nd)
    dilations = list(dilations or [1] * nd)
    pads = list(pads or [0] * (2 * nd))
    n, c = x.shape[:2]
    m = w.shape[0]
    kshape = w.shape[2:]
    oshape = conv_out_shape(x.shape[2:], kshape, strides, pads, dilations)
    if out is None:
        out = np.empty((n, m, *oshape), dtype=np.result_type(x.dtype, w.dtype))
    depthwise = group == c and w.shape[1] == 1 and nd == 2 and group > 1
    columns = (not depthwise and nd == 2 and out.dtype == np.float32 and out.flags.c_contiguous
               and accumulate.product_type(x.dtype, w.dtype, out.dtype) == np.float32)
    residual = activation.residual if activation is not None else None
    if residual is not None:
        activation.check(out.size)  # (a Reshape between the product and its Add keeps
        # the order of the elements: the residual is read in the result's shape)
    if residual is not None and not columns:
        # the residual as the separate Add computes it, then the activation
        conv_nd(x, w, b, strides, pads, dilations, group, out)
        return activation.after(out)
    if depthwise:
        if conv_depthwise.depthwise(x, w, out, strides, pads, dilations, m // c, b,
                                    activation):
            return out
    elif columns:
        conv2d_columns(x, w, out, strides, pads, dilations, group,
                       Epilogue(None if b is None else b.reshape(m, 1), *_parts(activation)))
        return out
    else:
        pointwise = all(k == 1 for k in kshape) and not any(pads) and all(s == 1 for s in strides)
        if pointwise:
            cols = x.reshape(n, group, c // group, int(np.prod(x.shape[2:])))
        else:  # gathered straight into the type the product accumulates in
            cols = im2col(x, kshape, strides, pads, dilations, oshape,
                          accumulate.product_type(out.dtype) if out.dtype.kind == "f"
                          else out.dtype)
            cols = cols.reshape(n, group, (c // group) * int(np.prod(kshape)),
                                int(np.prod(oshape)))
        wm = w.reshape(group, m // group, (c // group) * int(np.prod(kshape)))
        accumulate.matmul(wm, cols, out=out)
    if b is not None:
        out += b.reshape((1, m) + (1,) * nd)
    if activation:
        activation.activate(out)
    return out


def _parts(activation) -> tuple:
    """(activation, params, ctx, residual) of an optional activation epilogue."""
    if activation is None:
        return "", (), None, None
    return (activation.activation, tuple(activation.params), activation.ctx,
            activation.residual)


def conv_transpose_nd(x, w, b=None, strides=None, pads=None, dilations=None, group=1,
                      out_shape=None):
    """Transposed convolution: ``w`` is (C, M/group, *kernel); pads trim the full output."""
    nd = x.ndim - 2
    strides = list(strides or [1] * nd)
    dilations = list(dilations or [1] * nd)
    pads = list(pads or [0] * (2 * nd))
    n, c = x.shape[:2]
    kshape = w.shape[2:]
    m = w.shape[1] * group
    wm = w.reshape(group, c // group, -1).transpose(0, 2, 1)
    cols = accumulate.matmul(wm, x.reshape(n, group, c // group, -1))
    cols = cols.reshape(n, m, *kshape, *x.shape[2:])
    out = np.zeros((n, m, *out_shape), dtype=np.result_type(x.dtype, w.dtype))
    col2im_add(cols, out, strides, pads, dilations)
    if b is not None:
        out += b.reshape((1, m) + (1,) * nd)
    return out


@kernel("Conv")
def conv(inputs, attrs, ctx, activation=None, prepared: bool = True):
    """ONNX Conv; ``activation`` (an :class:`~.epilogue.Epilogue` without bias) is the
    epilogue of a FusedConv run through this kernel, else the run's fused residual
    (``ctx.epilogue``), if any. ``prepared=False``: the caller has tried
    :func:`.conv_prepared.run` already."""
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    if x.dtype.kind != "f":
        raise unsupported(ctx, f"Conv on {x.dtype}")
    if activation is None and ctx is not None:
        activation = ctx.epilogue  # a residual fused by the run (executor/fusion.py)
    if prepared and x.dtype == np.float32:  # a float32-products run's, prepared once per node
        y = conv_prepared.run(inputs, attrs, ctx, *conv_prepared.parts(activation))
        if y is not None:
            return [y]
    strides, pads, dilations = conv_geometry(x, w, attrs, ctx)
    return [conv_nd(x, w, b, strides, pads, dilations, attrs.get("group", 1),
                    activation=activation)]


@kernel("ConvTranspose")
@accepts("float")
def conv_transpose(inputs, attrs, ctx):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    nd = x.ndim - 2
    kshape = list(attrs.get("kernel_shape") or w.shape[2:])
    strides = list(attrs.get("strides") or [1] * nd)
    dilations = list(attrs.get("dilations") or [1] * nd)
    out_pad = list(attrs.get("output_padding") or [0] * nd)[:nd]
    auto_pad = attrs.get("auto_pad", "NOTSET")
    full = [strides[d] * (x.shape[2 + d] - 1) + out_pad[d] + (kshape[d] - 1) * dilations[d] + 1
            for d in range(nd)]
    out_shape = attrs.get("output_shape")
    if out_shape is not None:
        out_shape = list(out_shape)[-nd:]
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise unsupported(ctx, f"auto_pad {auto_pad!r}")
    pads = attrs.get("pads")
    if pads is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = out_shape or [x.shape[2 + d] * strides[d] for d in range(nd)]
        total = [full[d] - target[d] for d in range(nd)]
        small = [t // 2 for t in total]
        if auto_pad == "SAME_UPPER":
            pads = small + [t - s for t, s in zip(total, small)]
        else:
            pads = [t - s for t, s in zip(total, small)] + small
        out_shape = target
    pads = list(pads or [0] * (2 * nd))
    if out_shape is None:
        out_shape = [full[d] - pads[d] - pads[d + nd] for d in range(nd)]
    return [conv_transpose_nd(x, w, b, strides, pads, dilations, attrs.get("group", 1), out_shape)]


@kernel("Col2Im")
@accepts("float", "int")
def col2im_kernel(inputs, attrs, ctx):
    data, image_shape, block_shape = inputs
    image_shape = [int(v) for v in image_shape]
    block_shape = [int(v) for v in block_shape]
    nd = len(image_shape)
    strides = list(attrs.get("strides") or [1] * nd)
    dilations = list(attrs.get("dilations") or [1] * nd)
    pads = list(attrs.get("pads") or [0] * (2 * nd))
    n = data.shape[0]
    kprod = int(np.prod(block_shape))
    c = data.shape[1] // kprod
    in_shape = conv_out_shape(image_shape, block_shape, strides, pads, dilations)
    cols = data.reshape(n, c, *block_shape, *in_shape)
    out = np.zeros((n, c, *image_shape), dtype=data.dtype)
    return [col2im_add(cols, out, strides, pads, dilations)]

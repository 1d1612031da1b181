"""Operators with an activation epilogue (domain ``npuc``): schema, kernel, decomposition.

- ``FusedConv(X, W, B?)``: Conv (same attributes), then an activation epilogue.
- ``FusedGemm(A, B, C?)``: Gemm (same attributes), then an activation epilogue.
- ``FusedMatMul(A, B, Bias?)``: MatMul, plus a bias broadcast on the last axis, then an
  activation epilogue.
- ``Gelu(X) {approximate}``: GELU for opsets before 20, which have no ONNX Gelu.

The epilogue is ``activation`` (empty for none: Relu, LeakyRelu, Clip, Sigmoid, Tanh,
HardSigmoid, HardSwish, Elu, Gelu, GeluTanh) with its numbers in ``activation_params``
(LeakyRelu and Elu: alpha; Clip: min, max; HardSigmoid: alpha, beta).

Each kernel composes the ONNX kernels, so a fused op computes what its parts did. The
kernel modules that hold Numba loops are imported when a kernel first runs, not with this
module: a compile that runs no node (a bf16 one) never loads Numba.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from npuc.compiler.executor import threads
from npuc.compiler.executor.kernels import accumulate, get_kernel, kernel
from npuc.ir.schema import FLOAT, FLOATS, INT, INTS, STRING, register_op

from .emit import decomposition, emit_activation, emit_gelu, graph_opset
from .shapes import conv_shape, gemm_shape, matmul_shape, same_shape

EPILOGUE = {"activation": (STRING, ""), "activation_params": (FLOATS, [])}
ACTIVATION_PARAMS = {"Relu": 0, "LeakyRelu": 1, "Clip": 2, "Sigmoid": 0, "Tanh": 0,
                     "HardSigmoid": 2, "HardSwish": 0, "Elu": 1, "Gelu": 0, "GeluTanh": 0}
_OWN_ATTRS = ("activation", "activation_params")


CONV_ATTRS = {"auto_pad": (STRING, "NOTSET"), "dilations": (INTS, []), "group": (INT, 1),
              "kernel_shape": (INTS, []), "pads": (INTS, []), "strides": (INTS, [])}
GEMM_ATTRS = {"alpha": (FLOAT, 1.0), "beta": (FLOAT, 1.0), "transA": (INT, 0),
              "transB": (INT, 0)}

register_op("FusedConv", inputs=("X", "W", "B"), optional_inputs=1,
            attrs={**CONV_ATTRS, **EPILOGUE}, infer=conv_shape,
            doc="Conv followed by an activation epilogue.")
register_op("FusedGemm", inputs=("A", "B", "C"), optional_inputs=1,
            attrs={**GEMM_ATTRS, **EPILOGUE}, infer=gemm_shape,
            doc="Gemm followed by an activation epilogue.")
register_op("FusedMatMul", inputs=("A", "B", "Bias"), optional_inputs=1,
            attrs=dict(EPILOGUE), infer=matmul_shape,
            doc="MatMul plus a bias on the last axis, then an activation epilogue.")
register_op("Gelu", inputs=("X",), attrs={"approximate": (STRING, "none")},
            infer=same_shape, doc="GELU, exact (erf) or with the tanh approximation.")

# -- kernels ---------------------------------------------------------------------------
def onnx_ctx(ctx):
    """The context an ONNX kernel expects (the graph's ONNX opset, not npuc's)."""
    graph = getattr(ctx.node, "graph", None)
    opset = (graph.opset_of("") if graph is not None else None) or 21
    return dataclasses.replace(ctx, opset=opset, num_outputs=1)


def _split(attrs):
    return ({k: v for k, v in attrs.items() if k not in _OWN_ATTRS},
            attrs.get("activation", ""), attrs.get("activation_params", []))


def activate(y, name: str, params, ctx, fresh: bool = False):
    """The activation epilogue ``name`` applied to ``y`` (see
    :func:`npuc.compiler.executor.kernels.epilogue.activate`)."""
    from npuc.compiler.executor.kernels.epilogue import activate as run

    return run(y, name, params, ctx, fresh=fresh)


@kernel("FusedConv", domain="npuc")
def fused_conv(inputs, attrs, ctx):
    from npuc.compiler.executor.kernels import conv_prepared
    from npuc.compiler.executor.kernels.conv import conv
    from npuc.compiler.executor.kernels.epilogue import Epilogue

    if inputs[0].dtype == np.float32 and ctx is not None:  # prepared once per node
        own = attrs.get("activation", "")  # (else the run's fused residual, if any)
        act, residual = ((own, tuple(attrs.get("activation_params", ()))), None) if own \
            else conv_prepared.parts(ctx.epilogue)
        y = conv_prepared.run(inputs, attrs, ctx, act, residual)
        if y is not None:
            return [y]
    ctx = onnx_ctx(ctx)
    conv_attrs, act, params = _split(attrs)
    # the activation goes into the convolution, which applies it to each block in cache
    return conv(inputs, conv_attrs, ctx, activation=Epilogue(None, act, tuple(params), ctx)
                if act else None, prepared=False)


@kernel("FusedGemm", domain="npuc")
def fused_gemm(inputs, attrs, ctx):
    residual = ctx.epilogue  # an Add after the product that the run fused, or None
    ctx = dataclasses.replace(onnx_ctx(ctx), epilogue=None)
    gemm_attrs, act, params = _split(attrs)
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 and gemm_attrs.get("beta", 1.0) != 0 else None
    if (gemm_attrs.get("alpha", 1.0) == 1.0 and gemm_attrs.get("beta", 1.0) in (0.0, 1.0)
            and _fast(a, b, c, act)):
        a = a.T if gemm_attrs.get("transA", 0) else a
        b = b.T if gemm_attrs.get("transB", 0) else b
        return [_product_epilogue(a, b, c, act, residual)]
    y = activate(get_kernel("Gemm")(inputs, gemm_attrs, ctx)[0], act, params, ctx, fresh=True)
    return [y if residual is None else residual.after(y)]


@kernel("FusedMatMul", domain="npuc")
def fused_matmul(inputs, attrs, ctx):
    residual = ctx.epilogue  # an Add after the product that the run fused, or None
    ctx = dataclasses.replace(onnx_ctx(ctx), epilogue=None)
    _, act, params = _split(attrs)
    bias = inputs[2] if len(inputs) > 2 else None
    if _fast(inputs[0], inputs[1], bias, act) and inputs[0].ndim >= 2 and inputs[1].ndim >= 2:
        return [_product_epilogue(inputs[0], inputs[1], bias, act, residual)]
    y = get_kernel("MatMul")(inputs[:2], {}, ctx)[0]
    if len(inputs) > 2 and inputs[2] is not None:
        y = get_kernel("Add")([y, inputs[2]], {}, ctx)[0]
    y = activate(y, act, params, ctx, fresh=True)
    return [y if residual is None else residual.after(y)]


@kernel("Gelu", domain="npuc")
def gelu(inputs, attrs, ctx):
    return get_kernel("Gelu")(inputs, {"approximate": attrs.get("approximate", "none")},
                              onnx_ctx(ctx))


def _fast(a, b, bias, act) -> bool:
    """Whether a fused product runs with its bias and activation in one pass (float32
    products, float32 operands, a bias along the last axis, an activation vecmath has)."""
    from npuc.compiler.executor.kernels import vecmath

    if not (vecmath.fast() and a.dtype == b.dtype == np.float32 and a.ndim >= 1 and b.ndim >= 1
            and act in vecmath.ACTIVATIONS):
        return False
    n = b.shape[-1] if b.ndim >= 2 else 1
    return bias is None or (bias.dtype == np.float32 and bias.size == n
                            and all(d == 1 for d in bias.shape[:-1]))


def _product_epilogue(a, b, bias, act, residual=None):
    """``act(a @ b + bias)`` in float32: the product (``accumulate.matmul``), then the bias
    and activation in one pass per block of rows on npuc's threads (each element the same
    numbers as the MatMul, Add and activation kernels of a float32-products run). Not in
    the product's tile epilogue: there GELU made the product about 10% slower on one
    thread (394x768x3072: 35.2 ms after the product, 38.6 ms on each tile), and a bias
    alone gained nothing. ``residual`` (an Epilogue with a residual: an Add after the
    product that the run fused) is added to each block of rows after, then its
    activation."""
    from npuc.compiler.executor.kernels import vecmath

    y = accumulate.matmul(a, b)
    if residual is not None:
        residual.check(y.size)
    if bias is None and not act and residual is None:
        return y
    vec = None if bias is None else np.ascontiguousarray(bias).reshape(-1)
    rows = y.reshape(-1, y.shape[-1])
    other = None if residual is None else residual.residual.reshape(rows.shape)

    def block(r0, r1):
        vecmath.bias_activation(rows[r0:r1], vec, act)
        if other is not None:
            np.add(rows[r0:r1], other[r0:r1], out=rows[r0:r1])
            residual.activate(rows[r0:r1])

    threads.by_rows(block, len(rows), max(1, (1 << 19) // max(rows.shape[1], 1)))
    return y


# -- decompositions ----------------------------------------------------------------------
# The operator each fused one applies its epilogue to.
BASE = {"FusedConv": "Conv", "FusedGemm": "Gemm", "FusedMatMul": "MatMul"}


def split_epilogue(node, b, gelu_op: bool = False):
    """A fused node as its parts: the base operator (MatMul and the bias Add for
    FusedMatMul), then its activation as ONNX nodes; with ``gelu_op`` a GELU stays one
    ``npuc::Gelu`` node (what the quantizer turns into one table). The value they give."""
    attrs, act, params = _split(node.attrs)
    t = node.outputs[0].type
    if node.op_type == "FusedMatMul":
        y = b.op("MatMul", *node.inputs[:2], out_type=t)
        if node.input(2) is not None:
            y = b.op("Add", y, node.inputs[2], out_type=t)
    else:
        y = b.op(BASE[node.op_type], *node.inputs, out_type=t, **attrs)
    if gelu_op and act in ("Gelu", "GeluTanh"):
        return b.op("Gelu", y, domain="npuc", out_type=t,
                    approximate="tanh" if act == "GeluTanh" else "none")
    return emit_activation(b, y, act, params, graph_opset(node))


for _fused in BASE:
    decomposition(_fused)(lambda node, b: [split_epilogue(node, b)])


@decomposition("Gelu")
def _gelu(node, b):
    return [emit_gelu(b, node.inputs[0], node.attrs.get("approximate", "none"), graph_opset(node))]

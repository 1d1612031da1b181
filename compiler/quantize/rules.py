"""One rule per float operator: how it becomes int8, or why it stays float.

A rule is ``rule(rewriter, node) -> None | str``: it replaces the node (returning None)
or returns the reason it did not, which goes to the decision log.

- Conv, Gemm, MatMul: the compute-heavy operators. Their float inputs are quantized on
  the way in; weights per output channel; bias int32 at scale ``s_x * s_w``; a Relu or
  Clip that only reads the result becomes the output clamp, and an Add of a constant
  vector after a MatMul becomes its bias. ``npuc::FusedConv`` with a clamp epilogue is a
  Conv whose clamp is its own.
- Elementwise functions (one 256-entry table), data movement and Concat: in
  :mod:`.rules_elementwise`; Add, Sub, Mul, Div of tensors and sums in :mod:`.rules_arith`.
- ``npuc::Gelu`` (the optimizer's GELU): a table, like the ONNX elementwise functions.

Only the compute-heavy operators quantize a float input; the others apply only when
their inputs are int8 already, so a lone float island never pays a round trip.
"""

from __future__ import annotations

import numpy as np

from npuc.compiler.executor.kernels.windows import conv_pads
from npuc.ir.schema import attr_or_default
from npuc.ir.types import QuantParams, TensorType

from .epilogue import _epilogue, _out_type, _qrange, clamp_after
from .fixedpoint import quantize_multipliers
from .params import dequantize_weight, quantize_weight, weight_params
from .rules_arith import add, div, mul, reduce_sum, sub
from .rules_elementwise import LUT_OPS, PASS_OPS, concat, lut, passthrough, split


def _model_weight_params(given, w, axis):
    """The int8 parameters a pre-quantized model gave its weights, if npuc can use them
    (symmetric int8, per tensor or per output channel)."""
    if given is None or given.zero_point.dtype != np.int8 or np.any(given.zero_point != 0):
        return None
    if given.axis is not None and given.axis % w.ndim != axis % w.ndim:
        return None
    return given


def _weight_node(rw, node, x, w, bias, axis, y, absorbed, lo, hi, op, attrs, bias_axis,
                 given=None):
    """Shared by Conv, Gemm and MatMul with constant weights (``given``: the weights' own
    parameters in a pre-quantized model)."""
    qy = rw.act.get(y.name)
    if qy is None or x.name not in rw.act:
        return "no calibration range for its input or output"
    qx = rw.act[x.name]
    sc = rw.scheme
    sx = float(qx.scale)
    b = np.zeros(w.shape[axis], np.float64) if bias is None else bias.astype(np.float64)
    qw = _model_weight_params(given, w, axis)
    own = qw is None
    if own:
        qw = weight_params(w, axis, sc)
    if qw.axis is not None and own:  # a channel of tiny weights must still hold its bias
        floor = (np.abs(b) * 1.05 / (sx * 2.0**30)).astype(np.float32)
        qw = QuantParams(np.maximum(qw.scale, floor), qw.zero_point, qw.axis)
    wq = quantize_weight(w, qw, sc)
    mean = rw.stats.channel_mean(x.name) if rw.options.get("bias_correction") and \
        rw.stats is not None else None
    if mean is not None:
        b = b - _weight_error_on_mean(w, wq, qw, mean, op, attrs)
    sw = np.broadcast_to(qw.scale, (w.shape[axis],)).astype(np.float64)
    bq = np.clip(np.rint(b / (sx * sw)), -(2**31), 2**31 - 1).astype(np.int32)
    m0, sh = quantize_multipliers(sx * sw / float(qy.scale))
    xq = rw.quantized(x, node)
    qmin, qmax = _qrange(qy, lo, hi)
    attrs = {**attrs, "y_scale": float(qy.scale), "y_zero_point": int(qy.zero_point),
             "qmin": qmin, "qmax": qmax}
    name = node.name or y.name
    bias_q = QuantParams((sx * sw).astype(np.float32), np.zeros(len(sw), np.int32), 0)
    new = rw.node(op, [xq, rw.const(f"{name}_wq", wq, qw), rw.const(f"{name}_bq", bq, bias_q),
                       rw.const(f"{name}_m0", m0), rw.const(f"{name}_shift", sh)],
                  (f"{y.name}_q", _out_type(y, qy)), attrs, before=node, name=name)
    rw.replace(node, new.outputs[0], y, absorbed)


def _weight_error_on_mean(w, wq, qw, mean, op, attrs):
    """``(W_q - W) E[x]`` per output channel: the bias a rounding of W adds on average
    (``W_q``: ``wq`` dequantized with ``qw``)."""
    if op != "QConv":
        return np.asarray(mean) @ (dequantize_weight(wq, qw).astype(np.float64) - w)
    g = attrs.get("group", 1)
    m, cg = w.shape[0], w.shape[1]
    # block by block of output channels, so that the float64 errors stay in the cache:
    # each channel's sum is over its own row, the same numbers as over the whole weight
    e = np.empty((m, cg), np.float64)
    rows = max(1, (1 << 16) // max(1, w[0].size))
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        part = QuantParams(qw.scale[r0:r1], qw.zero_point, qw.axis) \
            if qw.axis is not None else qw
        err = dequantize_weight(wq[r0:r1], part).astype(np.float64) - w[r0:r1]
        e[r0:r1] = err.reshape(r1 - r0, cg, -1).sum(axis=2)
    mu = np.asarray(mean).reshape(g, cg)
    return np.einsum("mc,mc->m", e, mu[np.arange(m) // (m // g)])


def conv(rw, node):
    x, wv, bv = node.input(0), node.input(1), node.input(2)
    if wv is None or wv.const is None or (bv is not None and bv.const is None):
        return "its weights are not constant"
    w = wv.const
    nd = w.ndim - 2
    kshape = list(attr_or_default(node, "kernel_shape") or w.shape[2:])
    strides = list(attr_or_default(node, "strides") or [1] * nd)
    dil = list(attr_or_default(node, "dilations") or [1] * nd)
    auto = attr_or_default(node, "auto_pad") or "NOTSET"
    pads = attr_or_default(node, "pads")
    if auto not in ("NOTSET", "VALID"):
        shape = x.type.shape if isinstance(x.type, TensorType) else None
        if shape is None or not all(isinstance(d, int) for d in shape[2:]):
            return "auto_pad needs a known input size"
        pads = conv_pads(auto, shape[2:], kshape, strides, dil, pads)
    pads = list(pads or [0] * (2 * nd)) if auto != "VALID" else [0] * (2 * nd)
    attrs = {"strides": strides, "pads": pads, "dilations": dil,
             "group": int(attr_or_default(node, "group") or 1)}
    y, absorbed, lo, hi = _epilogue(rw, node)
    qx = rw.act.get(x.name)
    if qx is not None:
        attrs["x_zero_point"] = int(qx.zero_point)
    return _weight_node(rw, node, x, w, None if bv is None else bv.const, 0, y, absorbed,
                        lo, hi, "QConv", attrs, 0, wv.meta.get("quant"))


def _bias_after_matmul(rw, y, n):
    """An Add of a constant vector of ``n`` that alone reads ``y`` (fused as the bias)."""
    if len(y.uses) != 1 or y in rw.graph.outputs:
        return None
    add = y.uses[0][0]
    if add.op_type != "Add" or add.domain or add.name in rw.options.get("keep_float", ()):
        return None
    other = add.inputs[1 - y.uses[0][1]]
    if other is None or other.const is None or other.const.size != n or \
            other.const.shape[-1:] != (n,):
        return None
    return add, other.const.reshape(n)


def _matmul_common(rw, node, x, w, bias, given=None):
    """MatMul-like with constant ``w`` [K, N]; ``bias`` [N] or None."""
    y, absorbed, lo, hi = node.outputs[0], [], None, None
    fused = _bias_after_matmul(rw, y, w.shape[1])
    if fused is not None:
        absorbed = [fused[0]]
        bias = fused[1] if bias is None else bias + fused[1]
        y = fused[0].outputs[0]
        clamp = clamp_after(rw, y)  # Linear + ReLU: the bias and then the clamp
        if clamp is not None:
            absorbed.append(clamp[0])
            lo, hi, y = clamp[1], clamp[2], clamp[0].outputs[0]
    else:
        y, absorbed, lo, hi = _epilogue(rw, node)
    qx = rw.act.get(x.name)
    attrs = {"a_zero_point": int(qx.zero_point)} if qx is not None else {}
    return _weight_node(rw, node, x, w, bias, 1, y, absorbed, lo, hi, "QMatMul", attrs, 0,
                        given)


def gemm(rw, node):
    a, b, c = node.input(0), node.input(1), node.input(2)
    if b is None or b.const is None or (c is not None and c.const is None):
        return "its weights are not constant"
    if attr_or_default(node, "transA") or attr_or_default(node, "alpha") not in (None, 1.0) \
            or attr_or_default(node, "beta") not in (None, 1.0):
        return "transA, alpha or beta other than the defaults"
    w = b.const.T if attr_or_default(node, "transB") else b.const
    given = b.meta.get("quant")
    if given is not None and given.axis is not None and attr_or_default(node, "transB"):
        given = QuantParams(given.scale, given.zero_point, 1 - given.axis)
    bias = None
    if c is not None:
        bias = np.broadcast_to(c.const.reshape(-1) if c.const.size == w.shape[1]
                               else c.const.reshape(()), (w.shape[1],)).astype(np.float64)
    return _matmul_common(rw, node, a, w, bias, given)


def matmul(rw, node):
    a, b = node.input(0), node.input(1)
    if b.const is not None:
        if b.const.ndim != 2:
            return "constant weights of rank other than 2"
        return _matmul_common(rw, node, a, b.const, None, b.meta.get("quant"))
    # two activations (attention): both int8 per tensor
    if a.name not in rw.act or b.name not in rw.act:
        return "no calibration range for its inputs"
    qa, qb = rw.quantized(a, node), rw.quantized(b, node)
    y, absorbed, lo, hi = _epilogue(rw, node)
    qy = rw.act.get(y.name)
    if qy is None:
        return "no calibration range for its output"
    pa, pb = qa.type.quant, qb.type.quant
    m0, sh = quantize_multipliers([float(pa.scale) * float(pb.scale) / float(qy.scale)])
    qmin, qmax = _qrange(qy, lo, hi)
    name = node.name or y.name
    new = rw.node("QMatMul", [qa, qb, None, rw.const(f"{name}_m0", m0),
                              rw.const(f"{name}_shift", sh)],
                  (f"{y.name}_q", _out_type(y, qy)),
                  {"a_zero_point": int(pa.zero_point), "b_zero_point": int(pb.zero_point),
                   "y_scale": float(qy.scale), "y_zero_point": int(qy.zero_point),
                   "qmin": qmin, "qmax": qmax}, before=node, name=name)
    rw.replace(node, new.outputs[0], y, absorbed)


# npuc operators are keyed "npuc::Op" (the fused ones other than a FusedConv with a clamp
# are split before, see unfuse.py)
RULES = {"Conv": conv, "npuc::FusedConv": conv, "Gemm": gemm, "MatMul": matmul,
         "Concat": concat, "Split": split, "npuc::Gelu": lut,
         **{op: lut for op in LUT_OPS}, **{op: passthrough for op in PASS_OPS},
         "Add": add, "Sub": sub, "Mul": mul, "Div": div, "ReduceSum": reduce_sum,
         "ReduceMean": reduce_sum}

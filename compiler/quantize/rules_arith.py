"""The int8 rules of arithmetic between tensors and of sums (see :mod:`.rules`).

- Add, Sub, Mul of two tensors, one of which may be a constant tensor (a LayerNorm's
  scale and shift, a broadcast bias): TFLite's integer Add and Mul; the constant is
  quantized per tensor at its own range. Sub is TFLite's: an Add whose second multiplier
  is negated. A scalar constant makes the node a table instead (:func:`.lut`).
- Div of two tensors: the divisor's reciprocal as a table, then an integer Mul (a
  divisor whose observed range holds 0 stays float; the table saturates at the end of
  the observed range nearest 0). Div by a constant tensor is a Mul by its
  reciprocal.
- ReduceSum and ReduceMean: the int32 sum of the int8 differences from the zero point,
  requantized by one multiplier (``npuc::QReduceSum``).

Each applies only when a tensor input is int8 already; a graph input beside it (the
state of an unrolled recurrence) is quantized at its calibrated range.
"""

from __future__ import annotations

import math

import numpy as np

from .epilogue import _epilogue, _out_type, _qrange
from .fixedpoint import add_multipliers, quantize_multiplier
from .params import activation_params, quantize_value
from .rules_elementwise import lut, one_source


def _scalar_const(node) -> bool:
    return any(v is not None and v.const is not None and v.const.size == 1
               for v in node.inputs)


def _const_twin(rw, node, v, values=None):
    """A constant tensor operand as int8 at its own per-tensor range."""
    arr = np.asarray(v.const if values is None else values, np.float32)
    if not np.all(np.isfinite(arr)):
        return None
    q = activation_params(float(arr.min()), float(arr.max()), rw.scheme)
    return rw.const(f"{node.name or v.name}_{v.name}_q", quantize_value(arr, q), q)


_MOVES = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Identity", "Split",
          "Slice", "Gather"}


def _graph_input(v) -> bool:
    """Whether ``v`` is a graph input, or one moved by data movement only (the state an
    unrolled recurrence reads): not a value some rule or recovery chose to keep float."""
    while v.producer is not None:
        p = v.producer
        if p.domain not in ("", "ai.onnx") or p.op_type not in _MOVES or not p.inputs:
            return False
        v = p.inputs[0]
    return v.const is None and v.graph is not None and any(v is i for i in v.graph.inputs)


def _twins(rw, node):
    """The int8 forms of the two operands, or the reason there are none. When one
    operand is int8 already, a graph input beside it (a recurrent state, possibly
    reshaped) is quantized at its calibrated range to meet it."""
    ins = node.inputs[:2]
    if len(ins) < 2 or any(v is None for v in ins):
        return "an operand is missing"
    if all(v.const is not None for v in ins):
        return "both operands are constant"
    some_int8 = any(rw.available(v) is not None for v in ins)
    out = []
    for v in ins:
        if v.const is not None:
            if not np.issubdtype(v.const.dtype, np.floating):
                return "a constant operand is not float"
            t = _const_twin(rw, node, v)
        else:
            t = rw.available(v) or \
                (rw.quantized(v, node) if some_int8 and _graph_input(v) else None)
        if t is None:
            return "its inputs are not both int8"
        out.append(t)
    return out


def add(rw, node, negate: bool = False):
    """Add (or Sub with ``negate``) of two int8 tensors."""
    if _scalar_const(node) or one_source(rw, node):
        return lut(rw, node)
    twins = _twins(rw, node)
    if isinstance(twins, str):
        return twins
    qa, qb = twins
    y, absorbed, lo, hi = _epilogue(rw, node)
    qy = rw.act.get(y.name)
    if qy is None:
        return "no calibration range for its output"
    pa, pb = qa.type.quant, qb.type.quant
    ma, mb, mo = add_multipliers(float(pa.scale), float(pb.scale), float(qy.scale))
    if negate:
        mb = (-mb[0], mb[1])
    qmin, qmax = _qrange(qy, lo, hi)
    new = rw.node("QAdd", [qa, qb], (f"{y.name}_q", _out_type(y, qy)),
                  {"a_zero_point": int(pa.zero_point), "b_zero_point": int(pb.zero_point),
                   "a_multiplier": ma[0], "a_shift": ma[1], "b_multiplier": mb[0],
                   "b_shift": mb[1], "y_multiplier": mo[0], "y_shift": mo[1], "left_shift": 20,
                   "y_scale": float(qy.scale), "y_zero_point": int(qy.zero_point),
                   "qmin": qmin, "qmax": qmax}, before=node, name=node.name)
    rw.replace(node, new.outputs[0], y, absorbed)


def sub(rw, node):
    return add(rw, node, negate=True)


def _qmul(rw, node, qa, qb):
    y = node.outputs[0]
    qy = rw.act.get(y.name)
    if qy is None:
        return "no calibration range for its output"
    pa, pb = qa.type.quant, qb.type.quant
    m = quantize_multiplier(float(pa.scale) * float(pb.scale) / float(qy.scale))
    new = rw.node("QMul", [qa, qb], (f"{y.name}_q", _out_type(y, qy)),
                  {"a_zero_point": int(pa.zero_point), "b_zero_point": int(pb.zero_point),
                   "multiplier": m[0], "shift": m[1], "y_scale": float(qy.scale),
                   "y_zero_point": int(qy.zero_point)}, before=node, name=node.name)
    rw.replace(node, new.outputs[0], y)


def mul(rw, node):
    if _scalar_const(node) or one_source(rw, node):
        return lut(rw, node)
    twins = _twins(rw, node)
    if isinstance(twins, str):
        return twins
    return _qmul(rw, node, *twins)


def div(rw, node):
    """``a / b`` as ``a * (1 / b)``: the reciprocal a constant or a table of ``b``."""
    a, b = node.input(0), node.input(1)
    if b is not None and b.const is not None and b.const.size == 1 or \
            a is not None and a.const is not None or one_source(rw, node):
        return lut(rw, node)
    qa = rw.available(a)
    if qa is None:
        return "its dividend is not int8"
    if b.const is not None:
        if not np.issubdtype(b.const.dtype, np.floating) or np.any(b.const == 0):
            return "its constant divisor is not float or holds 0"
        qr = _const_twin(rw, node, b, 1.0 / b.const.astype(np.float64))
        return "its divisor's reciprocal is not finite" if qr is None else \
            _qmul(rw, node, qa, qr)
    qb = rw.available(b)
    if qb is None:
        return "its divisor is not int8"
    pb = qb.type.quant
    levels = (np.arange(-128, 128) - int(pb.zero_point)) * float(pb.scale)
    # an int8 range always holds 0; the divisor's observed range may not
    obs = rw.stats.observers.get(b.name) if rw.stats is not None else None
    lo, hi = (obs.lo, obs.hi) if obs is not None and obs.seen else (levels[0], levels[-1])
    if lo <= 0.0 <= hi:
        return "its divisor's range holds 0"
    levels = np.maximum(levels, lo) if lo > 0 else np.minimum(levels, hi)
    recip = 1.0 / levels
    qr = activation_params(float(recip.min()), float(recip.max()), rw.scheme)
    name = node.name or node.outputs[0].name
    r = rw.node("Lut", [qb, rw.const(f"{name}_reciprocal", quantize_value(recip, qr))],
                (f"{name}_reciprocal_q", _out_type(b, qr)),
                {"y_scale": float(qr.scale), "y_zero_point": int(qr.zero_point)},
                before=node, name=f"{name}_reciprocal")
    return _qmul(rw, node, qa, r.outputs[0])


def _axes(node, rank: int):
    if len(node.inputs) > 1 and node.input(1) is not None:
        if node.input(1).const is None:
            return None
        axes = [int(a) for a in node.input(1).const.ravel()]
    else:
        axes = list(node.attrs.get("axes") or [])
    if not axes:
        return [] if node.attrs.get("noop_with_empty_axes", 0) else list(range(rank))
    return sorted({a % rank for a in axes})


def reduce_sum(rw, node):
    """ReduceSum and ReduceMean of an int8 tensor: an int32 sum, requantized."""
    x = node.input(0)
    qx = rw.available(x)
    if qx is None:
        return "its input is not int8"
    shape = getattr(x.type, "shape", None)
    if shape is None or not all(isinstance(d, int) for d in shape):
        return "its input's shape is not known"
    axes = _axes(node, len(shape))
    if axes is None:
        return "its axes are not constant"
    if not axes:
        return "it reduces no axis"
    count = math.prod(shape[a] for a in axes)
    if count * 255 >= 2**31:
        return f"a sum of {count} terms may overflow the int32 accumulator"
    y = node.outputs[0]
    qy = rw.act.get(y.name)
    if qy is None:
        return "no calibration range for its output"
    mean = node.op_type == "ReduceMean"
    px = qx.type.quant
    real = float(px.scale) / float(qy.scale) / (count if mean else 1)
    try:
        m = quantize_multiplier(real)
    except ValueError as e:
        return str(e)
    new = rw.node("QReduceSum", [qx], (f"{y.name}_q", _out_type(y, qy)),
                  {"axes": axes, "keepdims": int(node.attrs.get("keepdims", 1)),
                   "mean": int(mean), "x_zero_point": int(px.zero_point),
                   "multiplier": m[0], "shift": m[1], "y_scale": float(qy.scale),
                   "y_zero_point": int(qy.zero_point)}, before=node, name=node.name)
    rw.replace(node, new.outputs[0], y)

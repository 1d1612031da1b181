"""The clamp of a quantized operator's int8 output (``qmin``, ``qmax``), as the chip
applies it: the fused node's own epilogue when it is a clamp (``npuc::FusedConv`` with
Relu or Clip), or a Relu or Clip that alone reads its result, absorbed.
Shared by the rules of :mod:`.rules` and :mod:`.rules_elementwise`."""

from __future__ import annotations

import numpy as np

from npuc.ir.types import QuantParams, TensorType


def _out_type(v, q: QuantParams) -> TensorType:
    shape = v.type.shape if isinstance(v.type, TensorType) else None
    return TensorType("i8", shape, q)


def _scalar(v) -> float | None:
    return None if v is None or v.const is None or v.const.size != 1 else float(v.const.ravel()[0])


def clamp_after(rw, y):
    """A Relu or Clip that alone reads ``y``: (node, lo, hi), absorbed as the clamp."""
    if len(y.uses) != 1 or y in rw.graph.outputs:
        return None
    user = y.uses[0][0]
    if user.domain or user.name in rw.options.get("keep_float", ()):
        return None
    if user.op_type == "Relu":
        return user, 0.0, None
    if user.op_type == "Clip":
        if len(user.inputs) > 1:
            lo, hi = user.input(1), user.input(2)
            if (lo is not None and lo.const is None) or (hi is not None and hi.const is None):
                return None
            return user, _scalar(lo), _scalar(hi)
        return user, user.attrs.get("min"), user.attrs.get("max")
    return None


def fused_clamp(node):
    """``(lo, hi)`` of a fused node's epilogue when it is a clamp (None for a bound it
    lacks; ``(None, None)`` for no activation), or None when it is another function.
    The bounds are rounded to the node's type, as the split Clip's constants were."""
    act = node.attrs.get("activation", "")
    if act == "":
        return None, None
    if act == "Relu":
        return 0.0, None
    if act == "Clip":
        t = node.outputs[0].type
        dt = t.dtype.numpy if isinstance(t, TensorType) else np.float32
        lo, hi = node.attrs.get("activation_params", [])[:2]
        return float(np.asarray(lo, dt)), float(np.asarray(hi, dt))
    return None


def _qrange(q: QuantParams, lo, hi) -> tuple[int, int]:
    s, z = float(q.scale), int(q.zero_point)
    lo = None if lo is None or not np.isfinite(lo) else lo  # Clip(-inf, 6): no lower clamp
    hi = None if hi is None or not np.isfinite(hi) else hi
    qmin = -128 if lo is None else max(-128, min(127, z + int(np.round(lo / s))))
    qmax = 127 if hi is None else min(127, max(-128, z + int(np.round(hi / s))))
    return qmin, qmax


def _epilogue(rw, node):
    """The value the quantized node will compute, the absorbed nodes and its clamp."""
    y = node.outputs[0]
    own = fused_clamp(node) if node.domain == "npuc" else None
    if own is not None and own != (None, None):
        return y, [], own[0], own[1]
    absorbed, lo, hi = [], None, None
    clamp = clamp_after(rw, y)
    if clamp is not None:
        absorbed, lo, hi = [clamp[0]], clamp[1], clamp[2]
        y = clamp[0].outputs[0]
    return y, absorbed, lo, hi

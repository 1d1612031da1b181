"""Pad folded into the Conv or pooling that reads it.

A zero Pad of the spatial axes before a Conv is the Conv's own ``pads``. Before an
AveragePool it is the same only when the padding counts in the average
(``count_include_pad=1``); before a MaxPool only when the pad value is -inf, which never
wins a max (a MaxPool pads with -inf itself).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.ir.schema import attr_or_default

from .base import RulePass, register
from .rewrite import Rule


def _pads(m):
    """The Pad's amounts as a list, or a reason they cannot be folded."""
    pad = m.pad
    if attr_or_default(pad, "mode") not in (None, "constant"):
        return f"the Pad's mode is {pad.attrs['mode']}"
    if m.axes is not None:
        return "the Pad names its axes"
    pads = m.const("pads") if m.pads is not None else pad.attrs.get("pads")
    if pads is None:
        return "the pad amounts are not constant"
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    rank = len(pads) // 2
    if any(p < 0 for p in pads):
        return "the Pad crops"
    if pads[0] or pads[1] or pads[rank] or pads[rank + 1]:
        return "the Pad pads the batch or channel axis"
    return pads


def _value(m) -> float:
    if m.value is not None:
        c = m.const("value")
        return float("nan") if c is None else float(np.asarray(c).reshape(-1)[0])
    return float(m.pad.attrs.get("value", 0.0))


def _merged(node, pads):
    rank = len(pads) // 2
    n = rank - 2
    old = list(node.attrs.get("pads", [0] * 2 * n))
    return [old[i] + pads[2 + i] for i in range(n)] + [old[n + i] + pads[rank + 2 + i]
                                                        for i in range(n)]


class PadIntoConsumer(Rule):
    """A Pad before a Conv, AveragePool or MaxPool becomes the consumer's padding."""

    pattern = ("Conv(pad:Pad(x, pads?, value?, axes?), w, b?)",
               "AveragePool(pad:Pad(x, pads?, value?, axes?))",
               "MaxPool(pad:Pad(x, pads?, value?, axes?))")

    def check(self, m):
        pads = _pads(m)
        if isinstance(pads, str):
            return pads
        root = m.root
        if attr_or_default(root, "auto_pad") not in (None, "NOTSET"):
            return f"the {root.op_type} pads itself (auto_pad)"
        value = _value(m)
        if root.op_type == "MaxPool":
            if not value == float("-inf"):
                return "the pad value is not -inf, so it could win the max"
            if len(root.outputs) > 1 and root.outputs[1] is not None:
                return "the MaxPool's indices are read"
        elif value != 0.0:
            return f"the pad value is {value}, not 0"
        if root.op_type != "Conv" and attr_or_default(root, "ceil_mode"):
            return "the pooling rounds up (ceil_mode)"
        if root.op_type == "AveragePool" and not attr_or_default(root, "count_include_pad"):
            return "the AveragePool does not count padding in its average"

    def rewrite(self, m, b):
        root = m.root
        attrs = dict(root.attrs, pads=_merged(root, _pads(m)))
        args = [m.x, m.w, m.b] if root.op_type == "Conv" else [m.x]
        return b.op(root.op_type, *args, out_type=root.outputs[0].type, **attrs)


@register
@dataclass
class FusePad(RulePass):
    """Fold Pad into the Conv, AveragePool or MaxPool that reads it."""

    name = "fuse-pad"
    rules = (PadIntoConsumer,)

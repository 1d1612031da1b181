"""Grouped-query attention and ONNX's own Attention op, as ``npuc::Attention``.

HF's ``repeat_kv`` gives each query head its key and value head by copying every kv head
``n`` times::

    k_rep = Reshape(Expand(Unsqueeze(k, [2]), [b, kv, n, t, d]), [b, kv * n, t, d])

and the fused op reads ``Transpose(k_rep)`` and ``v_rep``. :class:`AbsorbRepeatKV` hands
it ``k`` and ``v`` themselves with ``kv_repeat = n``: the same numbers, without the copies
(for a decode step the copies are most of the attention's memory traffic).

:class:`OnnxAttention` rewrites ONNX ``Attention`` (opset 23) on 4-D Q, K, V, when no
cache input is given and only the output is read; the cache forms stay as they are.
"""

from __future__ import annotations

import math

import numpy as np

from npuc.ir.schema import attr_or_default

from .rewrite import Rule

REPEAT = "Reshape(Expand(Unsqueeze({0}, {0}a?), {0}e), {0}r)"


def _repeat(m, name: str) -> int | None:
    """The ``n`` of a ``repeat_kv`` chain on captured value ``name``, or None."""
    t = m.values[name].type
    if t is None or t.shape is None or len(t.shape) != 4:
        return None
    axes = m.const(f"{name}a")
    axes = axes if axes is not None else _unsqueeze_axes(m, name)
    if axes is None or [int(a) % 5 for a in np.ravel(axes)] != [2]:
        return None
    expand, reshape = m.const(f"{name}e"), m.const(f"{name}r")
    if expand is None or reshape is None or expand.size != 5 or reshape.size != 4:
        return None
    n = int(expand[2])
    _, kv, s, d = t.shape
    if int(expand[1]) not in (kv, 1) or int(expand[3]) not in (s, 1) or \
            int(expand[4]) not in (d, 1) or n < 1:
        return None
    if int(reshape[1]) != kv * n or int(reshape[2]) not in (s, 0) or \
            int(reshape[3]) not in (d, 0):
        return None
    return n


def _unsqueeze_axes(m, name):
    for node in (n for n, _ in m.covered):
        if node.op_type == "Unsqueeze" and node.inputs[0] is m.values[name]:
            return node.attrs.get("axes")
    return None


class AbsorbRepeatKV(Rule):
    """Keys and values repeated per query group are read unrepeated by npuc::Attention."""

    pattern = (f"npuc::Attention(q, Transpose({REPEAT.format('k')}), {REPEAT.format('v')}, "
               "mask?)")

    def check(self, m):
        if m.root.attrs.get("kv_repeat", 1) != 1:
            return "the attention already reads grouped keys"
        kt_node = m.root.inputs[1].producer
        if list(kt_node.attrs.get("perm", [])) != [0, 1, 3, 2]:
            return "the key's transpose does not swap the last two axes"
        nk, nv = _repeat(m, "k"), _repeat(m, "v")
        if nk is None or nv is None:
            return "the keys or values are not repeated along the head axis (repeat_kv)"
        if nk != nv:
            return f"keys are repeated {nk} times but values {nv} times"

    def rewrite(self, m, b):
        n = _repeat(m, "k")
        kt = b.op("Transpose", m.k, perm=[0, 1, 3, 2])
        attrs = dict(m.root.attrs)
        attrs["kv_repeat"] = n
        return b.op("Attention", m.q, kt, m.v, m.mask, domain="npuc",
                    out_type=m.root.outputs[0].type, **attrs)


class OnnxAttention(Rule):
    """ONNX Attention without a cache becomes npuc::Attention."""

    pattern = ("Attention(q, k, v, mask?, past_k?, past_v?, nonpad?)",)

    def check(self, m):
        node = m.root
        if m.past_k is not None or m.past_v is not None or m.nonpad is not None:
            return "it reads a key-value cache (past keys, values or lengths)"
        if any(o is not None and (o.uses or any(o is g for g in node.graph.outputs))
               for o in node.outputs[1:]):
            return "the present keys, values or scores are read"
        shapes = [getattr(v.type, "shape", None) for v in (m.q, m.k, m.v)]
        if any(s is None or len(s) != 4 for s in shapes):
            return "Q, K and V are not 4-D"
        if not all(isinstance(d, int) for s in shapes for d in s):
            return "the shapes are not static"
        (_, hq, sq, _), (_, hk, sk, _) = shapes[0], shapes[1]
        if hq % hk:
            return "the query heads are not a multiple of the kv heads"
        if attr_or_default(node, "softcap") not in (None, 0.0):
            return "softcap is not supported"
        causal = attr_or_default(node, "is_causal")
        if causal and m.mask is not None:
            return "a causal attention with a mask as well is not supported"
        if causal and sq != sk:
            return "a causal attention with more keys than queries is not supported"
        mask = getattr(m.mask, "type", None) if m.mask is not None else None
        if mask is not None and (mask.shape is None or mask.shape[-1] != sk):
            return "the mask does not cover every key"

    def rewrite(self, m, b):
        node = m.root
        hq, hk = m.q.type.shape[1], m.k.type.shape[1]
        scale = attr_or_default(node, "scale")
        attrs = {"scale": float(scale) if scale else 1.0 / math.sqrt(m.q.type.shape[3]),
                 "kv_repeat": hq // hk, "nan_to_zero": 1}
        mask = m.mask
        if attr_or_default(node, "is_causal"):
            s = m.q.type.shape[2]
            mask = b.const(np.tril(np.ones((s, s), dtype=bool)))
        if mask is not None and mask.type.dtype.name == "bool":
            attrs.update(mask_mode="select", mask_fill=float("-inf"))
        kt = b.op("Transpose", m.k, perm=[0, 1, 3, 2])
        node.graph.opset.setdefault("npuc", 1)
        return b.op("Attention", m.q, kt, m.v, mask, domain="npuc",
                    out_type=node.outputs[0].type, **attrs)

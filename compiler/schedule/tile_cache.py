"""Tiles chosen once per group structure: identical layers are not tiled again.

A decoder's layers are the same groups over and over (same operators, attributes, shapes
and formats; only the names and the weights' values differ), and so are the segments of
a model split over several chips. :func:`choose_tile` walks every candidate tile of a
group and prices it with the cost model, which reads nothing but that structure, so the
answer for one layer is the answer for all of them. :class:`TileCache` keeps it under a
key made of exactly what the walk and the cost model read (:func:`group_key`):

- per member: domain, operator, attributes, and node metadata;
- per input: the member (and output) it comes from inside the group, or else its
  shape, type, metadata (the stored format of a weight), and for a small constant (at
  most :data:`SMALL_CONSTANT` elements: a Reshape's shape, a Slice's bounds, a scale) its
  values; a large constant (a weight) only by shape and format, which is all that tiling
  and pricing read of it;
- per output: shape, type and metadata, and whether it leaves the group (read after
  it, or a graph output), which the cost model counts as stored, or is read by nothing
  (written to a scratch buffer);
- per input from outside: whether it is a weight or the dequantization of one, which
  decides whether a matrix product may be cut along its weights' columns;
- the target, its SRAM budget and the precision priced at.

A group whose key cannot be made (an attribute holding a subgraph) is tiled as before.
"""

from __future__ import annotations

import copy

import numpy as np

SMALL_CONSTANT = 64


def _frozen(x):
    """A hashable, exact form of an attribute or metadata value (None when there is
    none: a subgraph)."""
    if isinstance(x, (str, int, float, bool, type(None))):
        return (type(x).__name__, x)
    if isinstance(x, np.generic):
        return ("np", x.dtype.str, x.tobytes())
    if isinstance(x, np.ndarray):
        return ("array", x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, (list, tuple)):
        items = tuple(_frozen(v) for v in x)
        return None if any(i is None for i in items) else ("seq", items)
    if isinstance(x, dict):
        items = tuple((str(k), _frozen(v)) for k, v in sorted(x.items(), key=lambda kv: str(kv[0])))
        return None if any(i[1] is None for i in items) else ("map", items)
    dtype = getattr(x, "name", None)  # an IR dtype or enum-like value
    if isinstance(dtype, str) and type(x).__module__.startswith("npuc"):
        return (type(x).__name__, dtype, repr(x))
    return None


def _value_sig(v):
    t = v.type
    shape = tuple(getattr(t, "shape", None) or ())
    dtype = getattr(getattr(t, "dtype", None), "name", None)
    meta = _frozen(dict(v.meta))
    if meta is None:
        return None
    const = None
    if v.const is not None:
        c = np.asarray(v.const)
        const = ("small", c.dtype.str, c.shape, c.tobytes()) if c.size <= SMALL_CONSTANT \
            else ("weight", c.dtype.str, c.shape)
    return (shape, dtype, meta, const)


def _leaves(v, inside: set) -> str:
    """What becomes of a member's output: read by nothing, read after the group (or a
    graph output), or only inside the group."""
    from .tiling import _unread

    if _unread(v):
        return "unread"
    graph_out = v.graph is not None and any(o is v for o in v.graph.outputs)
    return "leaves" if graph_out or any(id(u) not in inside for u, _ in v.uses) else "inside"


def group_key(members, target, budget: int, precision: str):
    """The key of a group's tiling (module docstring), or None when it has none."""
    from .slices import _is_weight

    made, inside = {}, {id(n) for n in members}
    for j, node in enumerate(members):
        for k, v in enumerate(node.outputs):
            if v is not None:
                made[id(v)] = (j, k)
    parts = []
    for node in members:
        attrs, meta = _frozen(dict(node.attrs)), _frozen(dict(node.meta))
        if attrs is None or meta is None:
            return None
        inputs = []
        for v in node.inputs:
            if v is None:
                inputs.append(None)
            elif id(v) in made:
                inputs.append(("member",) + made[id(v)])
            else:
                sig = _value_sig(v)
                if sig is None:
                    return None
                inputs.append(("outside", sig, _is_weight(v)))
        outputs = tuple(None if v is None else (_value_sig(v), _leaves(v, inside))
                        for v in node.outputs)
        if any(o[0] is None for o, v in zip(outputs, node.outputs) if v is not None):
            return None
        parts.append((node.domain, node.op_type, attrs, meta, tuple(inputs), outputs))
    return (target.name, budget, precision, tuple(parts))


class TileCache:
    """``choose_tile`` answers by :func:`group_key`; ``hits`` counts the reuses."""

    def __init__(self):
        self._answers: dict = {}
        self.hits = 0

    def get(self, key):
        """A copy of the answer kept for ``key`` (tile, estimate, footprint), or None."""
        if key is None or key not in self._answers:
            return None
        self.hits += 1
        return copy.deepcopy(self._answers[key])

    def put(self, key, answer) -> None:
        """Keep ``answer`` (a copy) for ``key``."""
        if key is not None:
            self._answers[key] = copy.deepcopy(answer)

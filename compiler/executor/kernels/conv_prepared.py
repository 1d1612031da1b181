"""A float32-products run's 2-D convolutions, prepared once per node.

Calibration, verification and serving run the same graph again and again, and a
convolution decides the same things each time: its geometry and output shape, whether it
runs as columns (:mod:`.conv_columns`) or depthwise, its blocks, its epilogue's bias and
clamp. Deciding them again took about 150 microseconds of Python per convolution and
run, most of it cache and TLB misses after the previous convolution's megabytes (the
same code ran 4-6x faster between small convolutions); MobileNetV2, 52 convolutions,
ran in 0.90-0.96x the time on two threads with them kept.
:func:`run` keeps those decisions per node and checks on each run that they still hold
(the node's attributes, its input's shape and type, its weights and bias by identity,
its activation): a node changed in place, or run on other shapes, is prepared again.

Only what :func:`.conv.conv_nd` computes the same way is taken: float32 input, weights
and bias, a clamp activation (none, Relu, Clip), and no residual for a depthwise
convolution. Everything else, and float64 runs, goes through :func:`.conv.conv_nd`.
"""

from __future__ import annotations

import weakref

import numpy as np

from .. import threads
from . import conv_columns, conv_depthwise
from .epilogue import Epilogue
from .windows import conv_geometry, conv_out_shape

# graph -> {id(node): its preparation}: a graph's preparations go with it, and they hold
# neither the graph, nor its nodes, nor their weights (weak references), so they keep
# nothing alive. Everything a preparation depends on is checked on each run, the weights
# and bias by identity: a node is never mistaken for another.
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def table(store: weakref.WeakKeyDictionary, graph) -> dict:
    """The preparations of ``graph`` in ``store`` (a graph's, by a key of its node)."""
    found = store.get(graph)
    if found is None:
        found = store[graph] = {}
    return found


def refs(arrays) -> tuple:
    """Weak references to ``arrays`` (None stays None): what a preparation keeps."""
    return tuple(None if a is None else weakref.ref(a) for a in arrays)


def same(kept: tuple, arrays) -> bool:
    """Whether ``arrays`` are the very arrays :func:`refs` was given."""
    return all((r is None and a is None) or (r is not None and r() is a)
               for r, a in zip(kept, arrays))


class _Prepared:
    """What a convolution node computes the same way on every run (``usable`` False: it
    goes through :func:`.conv.conv_nd`)."""

    __slots__ = ("attrs", "shape", "arrays", "act", "usable", "strides", "pads",
                 "dilations", "group", "out_shape", "depthwise", "epilogue", "blocks",
                 "activation")

    def holds(self, attrs, x, w, b, act) -> bool:
        return (same(self.arrays, (w, b)) and self.shape == x.shape
                and x.dtype == np.float32 and self.act == act and self.attrs == attrs)


def parts(epilogue) -> tuple[tuple, np.ndarray | None]:
    """``((activation, params), residual)`` of an optional :class:`~.epilogue.Epilogue`:
    what :func:`run` takes."""
    if epilogue is None:
        return ("", ()), None
    return (epilogue.activation, tuple(epilogue.params)), epilogue.residual


def run(inputs, attrs, ctx, act: tuple, residual) -> np.ndarray | None:
    """The convolution of ``inputs`` (X, W, B) with ``attrs``, then the activation ``act``
    (``(name, params)``: ``("", ())`` for none) after ``residual`` (an array, or None),
    when the node of ``ctx`` can take the prepared path; else None (nothing computed)."""
    node = ctx.node if ctx is not None else None
    graph = getattr(node, "graph", None)
    if graph is None or threads.products() != "float32":
        return None
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    prepared = table(_PREPARED, graph)
    p = prepared.get(id(node))
    if p is None or not p.holds(attrs, x, w, b, act):
        p = prepared[id(node)] = _prepare(attrs, ctx, x, w, b, act)
    if not p.usable or (residual is not None and (p.depthwise or residual.dtype != np.float32
                                                  or not residual.flags.c_contiguous)):
        return None
    out = np.empty(p.out_shape, np.float32)
    if p.depthwise:  # (float32 throughout a float32 run: it adds the bias and clamps)
        conv_depthwise.depthwise(x, w, out, p.strides, p.pads, p.dilations, 1, b, p.activation)
        return out
    epilogue = p.epilogue if residual is None else p.epilogue.with_residual(residual)
    epilogue.check(out.size)  # (ResidualMismatch: the interpreter runs the nodes apart)
    conv_columns.conv2d_columns(x, w, out, p.strides, p.pads, p.dilations, p.group, epilogue,
                                p.blocks)
    return out


def _prepare(attrs, ctx, x, w, b, act) -> _Prepared:
    p = _Prepared()
    p.attrs, p.shape, p.act = dict(attrs), x.shape, act
    p.arrays = refs((w, b))
    p.usable = False
    group = attrs.get("group", 1)
    if (x.ndim != 4 or w.ndim != 4 or x.dtype != np.float32 or w.dtype != np.float32
            or (b is not None and (b.dtype != np.float32 or b.shape != (w.shape[0],)))
            or x.shape[1] != w.shape[1] * group or w.shape[0] % group):
        return p
    # (no context: a clamp never needs one, and it would hold the node)
    activation = Epilogue(None, act[0], tuple(act[1])) if act[0] else None
    if activation is not None and activation.clamp() is None:
        return p  # (an activation through its ONNX kernel: the general path)
    p.strides, p.pads, p.dilations = conv_geometry(x, w, attrs, ctx)
    m = w.shape[0]
    p.out_shape = (x.shape[0], m, *conv_out_shape(x.shape[2:], w.shape[2:], p.strides,
                                                  p.pads, p.dilations))
    p.group = group
    p.depthwise = group == x.shape[1] and w.shape[1] == 1 and group > 1
    p.activation = activation
    if p.depthwise:
        if m != group:  # (a channel multiplier: the general path)
            return p
        p.epilogue, p.blocks = None, None
    else:
        p.epilogue = Epilogue(None if b is None else b.reshape(m, 1), act[0], tuple(act[1]))
        p.blocks = conv_columns.blocks_of(x.shape, w.shape, p.out_shape[2:], group)
    p.usable = all(d > 0 for d in p.out_shape)
    return p

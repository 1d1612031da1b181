"""Fusions the executor makes as it runs a graph in float32 products, the graph unchanged.

A residual connection: a convolution or a matrix product whose only reader is an Add of a
tensor computed before it, and the Relu or Clip that may be the Add's only reader; and a
product's Relu or Clip alone (a graph as imported: npuc's optimizer fuses those into the
product itself).
ResNet-50 spent about a tenth of its run in these Adds and Relus, each a pass over a whole
tensor that was in cache when the convolution wrote it block by block, and a transformer
adds its residual after two products of every layer. The run computes them with the
product instead (:class:`~.kernels.epilogue.Epilogue`, given to the kernel as
``ctx.epilogue``): each block of a convolution gets its bias, then the residual, then the
clamp while it is in cache; a MatMul or a Gemm each tile, a FusedMatMul or FusedGemm each
block of rows after its bias. A Reshape between the product and the Add (GPT-2's
two-dimensional Gemm and its residual of three) is looked through: it keeps the order of
the elements. The Add, the Reshape and the activation nodes are skipped. Every element goes through the same
float32 operations in the same order as the separate nodes, so the outputs have the same
bits (tested against the same run unfused).

Only runs with float32 products and no observer fuse: calibration observes every
activation (the convolution's own output too), and a float64 run is the IR's definition
that compiled programs are verified against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from npuc.ir.dtypes import f32
from npuc.ir.graph import Graph

if TYPE_CHECKING:  # imported when a fusion is made: the module loads Numba
    from .kernels.epilogue import Epilogue

# (domain, operator) of the products fused, whose kernels apply ``ctx.epilogue``; npuc's
# fused ones only without an activation of their own (applied before the Add)
PRODUCTS = {("", "Conv"), ("npuc", "FusedConv"), ("", "MatMul"), ("npuc", "FusedMatMul"),
            ("", "Gemm"), ("npuc", "FusedGemm")}
ACTIVATIONS = ("Relu", "Clip")


@dataclass(frozen=True)
class Residual:
    """The product at ``node`` adds ``residual`` (None: no Add) and applies ``act`` (a
    node, or None) and makes ``out``; the nodes at ``skipped`` (a Reshape between them,
    the Add, the activation) do not run."""

    node: int
    residual: object  # the Add's other input (a Value), or None
    act: object  # the Relu or Clip node, or None
    out: object  # the Value the fused node computes
    skipped: tuple[int, ...]
    reshaped: bool = False  # a Reshape between the product and the Add: the result has
    # the product's shape and takes the residual's
    params: tuple = ()  # the Clip's float32 bounds


def plan(graph: Graph) -> dict[int, Residual]:
    """The residual fusions of ``graph``, by the index of their product."""
    nodes = list(graph.nodes)
    position = {id(n): i for i, n in enumerate(nodes)}
    kept = {id(v) for v in graph.outputs}
    fused: dict[int, Residual] = {}
    taken: set[int] = set()
    for i, node in enumerate(nodes):
        if (node.domain, node.op_type) not in PRODUCTS or node.attrs.get("activation"):
            continue
        y = node.outputs[0]
        if y is None or y.shape is None or len(y.shape) < 2:  # (a product of vectors)
            continue
        alone = _activation(y, i, kept, graph, position)
        if alone is not None:
            fused[i] = alone
            continue
        through = _only_reader(y, ("Reshape",), kept, graph)
        if through is not None:
            y = through.outputs[0]
        add = _only_reader(y, ("Add",), kept, graph)
        if add is None or id(add) in taken or len(add.inputs) != 2:
            continue
        r = add.inputs[1] if add.inputs[0] is y else add.inputs[0]
        if r is None or r is y or not _same_float32(y, r) or not _before(r, i, position):
            continue
        z = add.outputs[0]
        act = _only_reader(z, ACTIVATIONS, kept, graph)
        params = _clip_bounds(act) if act is not None and act.op_type == "Clip" else ()
        if params is None:
            act, params = None, ()
        skipped = tuple(position[id(n)] for n in (through, add, act) if n is not None)
        fused[i] = Residual(i, r, act, act.outputs[0] if act is not None else z, skipped,
                            through is not None, params)
        taken.add(id(add))
    return fused


def _activation(y, index: int, kept, graph, position: dict) -> Residual | None:
    """The fusion of a float32 product's Relu or Clip (constant bounds) that alone reads
    it, without a residual (an imported graph's, which npuc's optimizer would have fused
    into the product); None when there is none."""
    act = _only_reader(y, ACTIVATIONS, kept, graph)
    if act is None or act.inputs[0] is not y or getattr(y.type, "dtype", None) != f32:
        return None
    params = _clip_bounds(act) if act.op_type == "Clip" else ()
    if params is None:
        return None
    return Residual(index, None, act, act.outputs[0], (position[id(act)],), False, params)


def _only_reader(v, ops, kept, graph, domains=("",)):
    """The one node of ``graph`` (an operator of ``ops`` in ``domains``, by default
    ONNX's) reading ``v`` once, when nothing else reads it and it is not a graph output;
    else None."""
    if v is None or id(v) in kept or len(v.uses) != 1:
        return None
    node, _ = v.uses[0]
    if node.domain not in domains or node.op_type not in ops or node.graph is not graph:
        return None
    if any(o is not None and o.uses == [] and id(o) not in kept for o in node.outputs):
        return None  # an output nobody reads: leave such a node alone
    return node


def _same_float32(a, b) -> bool:
    """Both float32 tensors of the same known rank and the same dimensions (the same
    symbol for a symbolic one: the same size at run time)."""
    ta, tb = a.type, b.type
    return (ta is not None and tb is not None and getattr(ta, "shape", None) is not None
            and getattr(ta, "dtype", None) == f32 and getattr(tb, "dtype", None) == f32
            and ta.shape == tb.shape and all(d is not None for d in ta.shape))


def _before(v, index: int, position: dict) -> bool:
    """Whether ``v`` has its value when the node at ``index`` runs."""
    producer = v.producer
    return producer is None or position.get(id(producer), -1) < index


def _clip_bounds(clip) -> tuple | None:
    """A Clip's float32 bounds ``(lo, hi)`` when they are constant inputs (an absent one
    unbounded) with lo <= hi; else None, and for the attributes of Clip before opset 11
    (their defaults are the largest finite floats)."""
    if "min" in clip.attrs or "max" in clip.attrs or (clip.graph is not None and
                                                      (clip.graph.opset_of("") or 11) < 11):
        return None
    bounds = []
    for k, unbounded in ((1, -np.inf), (2, np.inf)):
        v = clip.inputs[k] if len(clip.inputs) > k else None
        if v is not None and v.const is None:
            return None
        bounds.append(np.float32(unbounded if v is None else np.asarray(v.const).reshape(-1)[0]))
    return tuple(bounds) if bounds[0] <= bounds[1] else None


def epilogue_for(fusion: Residual, residual: np.ndarray, ctx) -> Epilogue | None:
    """The epilogue of the fused product, or None when ``residual`` is not a float32
    array the epilogue can read (the nodes then run unfused); without a residual (a
    fused activation alone), its activation."""
    from .kernels.epilogue import Epilogue

    if residual is not None and residual.dtype != np.float32:
        return None
    act = "" if fusion.act is None else fusion.act.op_type
    key = (act, fusion.params)
    template = _TEMPLATES.get(key) if ctx is None else None
    if template is None:
        template = Epilogue(None, act, fusion.params, ctx)
        if ctx is None:  # (the same for every run and node: decided once)
            _TEMPLATES[key] = template
    return template if residual is None else \
        template.with_residual(np.ascontiguousarray(residual))


_TEMPLATES: dict[tuple, Epilogue] = {}  # (activation, params) -> its epilogue without residual

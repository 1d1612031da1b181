"""Constant folding with the executor's kernels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.compiler.executor.kernels import KernelContext, get_kernel
from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph, Node, subgraphs
from npuc.ir.types import TensorType

from .base import Pass, register
from .cse import NONDETERMINISTIC

# Operators that read only their input's shape: foldable when that shape is static.
SHAPE_ONLY = {"Shape", "Size"}


@register
@dataclass
class FoldConstants(Pass):
    """Compute nodes whose inputs are all constants, and keep the results as constants.

    The executor's own kernels compute them, so a folded value is exactly what running
    the graph gives. ``Shape`` and ``Size`` fold when their input's shape is static.
    A result larger than ``max-elements`` (-1: no limit) is not folded when it is larger
    than its inputs too: folding an Expand or a Tile would only grow the model.
    """

    name = "fold-constants"
    max_elements: int = 1 << 20

    def run(self, graph: Graph) -> bool:
        log = log_of(graph)
        changed = False
        for node in graph.nodes:
            if node.op_type in SHAPE_ONLY and node.domain == "":
                changed |= self._fold_shape(graph, node)
                continue
            if not _foldable(node):
                continue
            too_big = self._too_big(node)
            if too_big:
                log.record(self.name, node.name, "not folded", too_big)
                continue
            fn = get_kernel(node.op_type, node.domain)
            if fn is None:
                continue
            ctx = KernelContext(opset=graph.opset_of(node.domain) or 1,
                                num_outputs=len(node.outputs), node=node,
                                output_types=[None if o is None else o.type
                                              for o in node.outputs])
            try:
                results = fn([None if v is None else v.const for v in node.inputs],
                             node.attrs, ctx)
            except Exception as e:  # the graph would fail at run time too; leave it
                log.record(self.name, node.name, "not folded", f"computing it failed: {e}")
                continue
            if not all(isinstance(r, np.ndarray) for r, o in zip(results, node.outputs)
                       if o is not None):
                continue
            _replace_with_constants(graph, node, results)
            changed = True
        return changed

    def _fold_shape(self, graph: Graph, node: Node) -> bool:
        t = node.inputs[0].type if node.inputs and node.inputs[0] is not None else None
        if not isinstance(t, TensorType) or not t.is_static:
            return False
        shape = list(t.shape)
        if node.op_type == "Size":
            result = np.asarray(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
        else:
            start = node.attrs.get("start", 0)
            end = node.attrs.get("end", None)
            result = np.asarray(shape[slice(start, end)], dtype=np.int64)
        _replace_with_constants(graph, node, [result])
        return True

    def _too_big(self, node: Node) -> str | None:
        if self.max_elements < 0:
            return None
        sizes = [o.type.numel for o in node.outputs
                 if o is not None and isinstance(o.type, TensorType)]
        out = max((s for s in sizes if s is not None), default=None)
        if out is None or out <= self.max_elements:
            return None
        inputs = sum(v.const.size for v in node.inputs if v is not None)
        if out <= inputs:
            return None
        return (f"its result has {out} elements, more than max-elements={self.max_elements} "
                f"and more than its inputs ({inputs}); folding would grow the model")


def _foldable(node: Node) -> bool:
    if node.op_type in NONDETERMINISTIC or subgraphs(node) or not node.outputs:
        return False
    return all(v is None or v.const is not None for v in node.inputs) and \
        any(v is not None for v in node.inputs) or (not node.inputs and node.op_type in
                                                    ("Constant", "ConstantOfShape"))


def _replace_with_constants(graph: Graph, node: Node, results) -> None:
    """Swap a node's outputs for constants holding ``results`` (names are kept)."""
    pending = []
    for out, r in zip(node.outputs, results):
        if out is None:
            continue
        dt = out.type.dtype.numpy if isinstance(out.type, TensorType) and \
            out.type.dtype.kind != "string" else None
        arr = np.asarray(r)
        if dt is not None and arr.dtype != dt:
            arr = arr.astype(dt)
        c = graph.add_constant(None, arr)
        out.replace_all_uses_with(c)
        pending.append((c, out.name))
    graph.remove_node(node)
    for c, name in pending:  # the constant takes the old value's name, now free
        graph.rename(c, name)

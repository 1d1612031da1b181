"""Constant folding with the executor's kernels: npuc's one constant folder.

A node whose inputs are all constants is computed now (:func:`compute`, through the
executor's :func:`~npuc.compiler.executor.interpreter.evaluate`, so a folded value is
exactly what running the graph gives) and its outputs become constants that keep their
names. ``Shape`` and ``Size`` fold when their input's shape is static. Three users, three
size policies:

- the ``fold-constants`` pass: a result above ``max-elements`` is kept when it is larger
  than its inputs too (folding an Expand or a Tile would only grow the model);
- canonicalization folds small nodes only (:class:`FoldSmall`, a rewrite rule);
- compile preparation (:func:`fold_node`, :func:`fold_constants`) folds the shape
  arithmetic left once shapes are fixed: within a size limit, never npuc's own operators,
  the dequantization of a pre-quantized model's weights or a graph output, and a product
  of constants too costly to compute at compile time is refused (:data:`FOLD_MAX_MACS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.compiler.executor.interpreter import NoKernel, evaluate
from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph, Node, subgraphs
from npuc.ir.limits import SizeError, check_type
from npuc.ir.types import TensorType

from .base import Pass, register
from .pattern import Match
from .rewrite import Rule

# Operators whose result is drawn at random: computing them once would freeze one draw.
NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                    "Multinomial", "Bernoulli"}
# Operators that read only their input's shape: foldable when that shape is static.
SHAPE_ONLY = {"Shape", "Size"}


def foldable(node: Node) -> bool:
    """Whether ``node`` can be computed now: deterministic, no subgraph, every input a
    constant (a Constant or ConstantOfShape may have none)."""
    if node.op_type in NONDETERMINISTIC or subgraphs(node) or not node.outputs:
        return False
    return all(v is None or v.const is not None for v in node.inputs) and \
        any(v is not None for v in node.inputs) or (not node.inputs and node.op_type in
                                                    ("Constant", "ConstantOfShape"))


def shape_result(node: Node) -> np.ndarray | None:
    """The value of a ``Shape`` or ``Size`` of a tensor of static shape (else None)."""
    if node.op_type not in SHAPE_ONLY or node.domain not in ("", "ai.onnx"):
        return None
    t = node.inputs[0].type if node.inputs and node.inputs[0] is not None else None
    if not isinstance(t, TensorType) or not t.is_static:
        return None
    if node.op_type == "Size":
        return np.asarray(int(np.prod(t.shape, dtype=np.int64)), dtype=np.int64)
    start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
    return np.asarray(list(t.shape)[slice(start, end)], dtype=np.int64)


def compute(node: Node, opset: int | None = None) -> list:
    """The results of ``node`` from its constant inputs, cast to the declared types.
    Raises what :func:`evaluate` raises (no kernel, a kernel refusing its inputs)."""
    results = evaluate(node, [None if v is None else v.const for v in node.inputs],
                       opset=opset)
    cast = []
    for out, r in zip(node.outputs, results):
        t = out.type if out is not None else None
        if isinstance(r, np.ndarray) and isinstance(t, TensorType) and \
                t.dtype.kind != "string" and r.dtype != t.dtype.numpy:
            r = r.astype(t.dtype.numpy)
        cast.append(r)
    return cast


def replace_with_constants(graph: Graph, node: Node, results) -> None:
    """Swap a node's outputs for constants holding ``results`` (names are kept)."""
    pending = []
    for out, r in zip(node.outputs, results):
        if out is None:
            continue
        c = graph.add_constant(None, np.asarray(r))
        out.replace_all_uses_with(c)
        pending.append((c, out.name))
    graph.remove_node(node)
    for c, name in pending:  # the constant takes the old value's name, now free
        graph.rename(c, name)


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
            shape = shape_result(node)
            if shape is not None:
                replace_with_constants(graph, node, [shape])
                changed = True
                continue
            if node.op_type in SHAPE_ONLY and node.domain == "" or not foldable(node):
                continue
            too_big = self._too_big(node)
            if too_big:
                log.record(self.name, node.name, "not folded", too_big)
                continue
            try:
                results = compute(node)
            except NoKernel:
                continue
            except Exception as e:  # the graph would fail at run time too; leave it
                log.record(self.name, node.name, "not folded", f"computing it failed: {e}")
                continue
            if all(isinstance(r, np.ndarray) for r, o in zip(results, node.outputs)
                   if o is not None):
                replace_with_constants(graph, node, results)
                changed = True
        return changed

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


SMALL = 64  # elements: canonicalization folds what costs nothing to keep as a constant


class FoldSmall(Rule):
    """A node with small constant inputs and a small result is folded."""

    roots = None
    quiet = True

    def match(self, node):
        if foldable(node) and len(node.outputs) == 1 and node.op_type != "Constant" and \
                all(v is None or v.const.size <= SMALL for v in node.inputs):
            yield Match(node, covered=[(node, True)])

    def rewrite(self, m, b):
        try:
            result = np.asarray(compute(m.root)[0])
        except Exception:  # left for run time, where the executor says why
            return None
        if result.size > SMALL:
            return None
        return b.const(result)


# -- compile preparation ---------------------------------------------------------------
# A fold is work done at compile time: a product of constants costing more multiply-adds
# than this would stall the compiler (and every calibration run after it) for minutes.
FOLD_MAX_MACS = 1 << 32


def fold_node(graph: Graph, node: Node, limit: int | None = None) -> bool:
    """Replace ``node`` by constants when compile preparation may compute it now; whether
    it was. ``limit`` bounds the elements of inputs and results; random operators,
    subgraphs, npuc operators and graph outputs are left alone."""
    if node.domain not in ("", "ai.onnx") or node.op_type == "Dropout":
        return False
    if node.op_type == "DequantizeLinear":  # a pre-quantized model's weights keep their scales
        return False
    if any(o is not None and any(o is g for g in graph.outputs) for o in node.outputs):
        return False
    if node.op_type == "Shape":
        shape = shape_result(node)
        if shape is None:
            return False
        replace_with_constants(graph, node, [shape])
        return True
    ins = [v for v in node.inputs if v is not None]
    if not ins or not foldable(node):
        return False
    if limit is not None and any(v.const.size > limit for v in ins):
        return False
    if not _worth_folding(node, _result_types(node), limit):
        return False
    try:
        results = compute(node, graph.opset_of(node.domain) or 17)
    except SizeError:
        raise
    except Exception:  # left to run at run time; the executor will say why
        return False
    if limit is not None and any(np.asarray(r).size > limit for r in results):
        return False
    replace_with_constants(graph, node, results)
    return True


def fold_constants(graph: Graph) -> int:
    """Replace nodes whose inputs are all constants by their results (compile
    preparation's policy, no size limit); the count folded."""
    folded = sum(fold_node(graph, node) for node in list(graph.nodes))
    for v in list(graph.constants.values()):
        if not v.uses and not any(o is v for o in graph.outputs):
            graph.remove_constant(v)
    return folded


def _result_types(node: Node) -> list:
    """The node's output types, inferred when not all known; beyond the size guard they
    are refused (SizeError names the node and the size)."""
    from npuc.ir.infer import infer_node

    types = [o.type if o is not None else None for o in node.outputs]
    if not all(isinstance(t, TensorType) and t.is_static for t in types if t is not None) \
            or any(t is None for t in types):
        try:
            types = infer_node(node)
        except SizeError:
            raise
        except Exception:
            pass
    for t in types:
        check_type(t, node.describe())
    return types


def _worth_folding(node: Node, types, limit) -> bool:
    """Whether to compute ``node`` now: within ``limit`` elements when given; a product of
    constants beyond :data:`FOLD_MAX_MACS` is skipped under a limit, refused without one."""
    sizes = [t.numel for t in types if isinstance(t, TensorType) and t.is_static]
    out = max(sizes, default=0)
    if limit is not None and out > limit:
        return False
    if node.op_type in ("MatMul", "Gemm", "Conv", "ConvTranspose") and len(node.inputs) > 1:
        w = node.inputs[1].type
        depth = w.numel // max(w.shape[-1 if node.op_type != "Conv" else 0], 1) \
            if isinstance(w, TensorType) and w.is_static and w.shape else 1
        if out * depth > FOLD_MAX_MACS:
            if limit is not None:
                return False
            raise SizeError(f"{node.describe()}: computing it from constants takes "
                            f"{out * depth:.3g} multiply-adds, more than npuc does at compile "
                            f"time ({FOLD_MAX_MACS:.3g})")
    return True

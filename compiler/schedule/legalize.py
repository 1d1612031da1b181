"""Operators a chip lacks, written with operators it has (before quantization).

Each rewrite applies only when the chip's operator table lacks the node's operator and
has every operator of the replacement; the result computes the same values. The node's
name and its output's name are kept, so ``npuc explain`` and calibration still find
them, and each rewrite is recorded in the decision log with the operators used.

- Squeeze, Unsqueeze of a known shape: a Reshape.
- GlobalMaxPool, GlobalAveragePool: a MaxPool or AveragePool whose window is the whole
  spatial extent.
- ReduceMax over the trailing axes of a known shape: a MaxPool over a ``[1, rows, 1,
  K]`` view of the input (``K`` the product of the reduced axes), reshaped back.
"""

from __future__ import annotations

import math

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.types import TensorType


def _static(v) -> tuple[int, ...] | None:
    shape = getattr(getattr(v, "type", None), "shape", None)
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return tuple(shape)


def _has(target, *ops) -> bool:
    return all(target.rule(op) is not None for op in ops)


def _reshape(g, node, x, shape, name):
    const = g.add_constant(f"{name}_shape", np.array(shape, np.int64))
    t = TensorType(x.type.dtype, tuple(shape))
    return g.create_node("Reshape", [x, const], [(name, t)], before=node).outputs[0]


def _squeeze(g, node, target):
    out = _static(node.outputs[0])
    if out is None or not _has(target, "Reshape"):
        return None
    return [_reshape(g, node, node.inputs[0], out, f"{node.outputs[0].name}_reshaped")], \
        "Reshape"


def _global_pool(g, node, target):
    local = node.op_type[len("Global"):]
    x = _static(node.inputs[0])
    if x is None or len(x) < 3 or not _has(target, local):
        return None
    y = node.outputs[0]
    pooled = g.create_node(local, [node.inputs[0]], [(f"{y.name}_pooled", y.type)],
                           {"kernel_shape": list(x[2:])}, before=node).outputs[0]
    return [pooled], local


def _reduce_max(g, node, target):
    x, y = _static(node.inputs[0]), _static(node.outputs[0])
    if x is None or y is None or not x or not _has(target, "MaxPool", "Reshape"):
        return None
    if len(node.inputs) > 1 and node.input(1) is not None:
        if node.input(1).const is None:
            return None
        axes = [int(a) for a in node.input(1).const.ravel()]
    else:
        axes = list(node.attrs.get("axes") or range(len(x)))
    axes = sorted({a % len(x) for a in axes})
    if not axes or axes != list(range(len(x) - len(axes), len(x))):
        return None  # only the trailing axes are one window
    k = math.prod(x[a] for a in axes)
    rows = math.prod(x[:len(x) - len(axes)])
    name = node.outputs[0].name
    view = _reshape(g, node, node.inputs[0], [1, rows, 1, k], f"{name}_rows")
    t = TensorType(view.type.dtype, (1, rows, 1, 1))
    pooled = g.create_node("MaxPool", [view], [(f"{name}_pooled", t)],
                           {"kernel_shape": [1, k]}, before=node).outputs[0]
    return [_reshape(g, node, pooled, list(y), f"{name}_reshaped")], "Reshape, MaxPool"


REWRITES = {"Squeeze": _squeeze, "Unsqueeze": _squeeze, "GlobalMaxPool": _global_pool,
            "GlobalAveragePool": _global_pool, "ReduceMax": _reduce_max}


def legalize(graph, target) -> int:
    """Rewrite the nodes ``target`` lacks an operator for where it has a replacement;
    returns how many were rewritten."""
    if target.kind != "npu":
        return 0
    done = 0
    log = log_of(graph)
    for node in list(graph.nodes):
        rewrite = REWRITES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if rewrite is None or _has(target, node.op_type) or len(node.outputs) != 1:
            continue
        made = rewrite(graph, node, target)
        if made is None:
            continue
        (new,), ops = made
        _take_place(graph, node, new)
        log.record("legalize", node.name or new.name, "rewritten",
                   f"{target.name} has no {node.op_type}: computed with {ops}")
        done += 1
    return done


def _take_place(graph, node, new) -> None:
    """``new`` replaces ``node``'s output, under its name; the last new node its name."""
    y = node.outputs[0]
    name, node_name = y.name, node.name
    y.replace_all_uses_with(new)
    node.drop_inputs()
    graph.remove_node(node)
    graph.rename(new, name)  # the removed node's output freed the name
    if node_name:
        new.producer.name = node_name

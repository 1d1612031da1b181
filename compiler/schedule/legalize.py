"""Operators a chip lacks, written with operators it has (before quantization).

Each rewrite applies only when the chip does not run the node (its operator table lacks
the operator, or a limit refuses the node) and runs every operator of the replacement;
the result computes the same values. The node's name and its output's name are kept, so
``npuc explain`` and calibration still find them, and each rewrite is recorded in the
decision log with the operators used and the reason.

- Squeeze, Unsqueeze of a known shape: a Reshape.
- GlobalMaxPool, GlobalAveragePool: a MaxPool or AveragePool whose window is the whole
  spatial extent.
- ReduceMax over the trailing axes of a known shape: a MaxPool over a ``[1, rows, 1,
  K]`` view of the input (``K`` the product of the reduced axes), reshaped back.
- A Slice taking one run of one axis (step 1), where the chip lacks Slice or a limit
  refuses that axis (Warboy slices only the height axis), and a Gather of one constant
  index or a constant run of indices (the time step or gate of an unrolled LSTM): the
  part of a Split of that axis, reshaped to drop the axis for a scalar index. The
  Split's other parts are outputs nobody reads. Both only move bytes (float or 8-bit
  data; index arithmetic stays on the host), so an int8 tensor's scale passes through.
"""

from __future__ import annotations

import math

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.types import TensorType
from npuc.targets.placement import place_node


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


def _split_part(g, node, target, axis: int, start: int, length: int):
    """The part ``[start, start + length)`` of the input's ``axis``, as an output of a
    Split of that axis; None (and no Split) when the chip would not run that Split."""
    x = node.inputs[0]
    shape = list(_static(x))
    if length == shape[axis]:
        return x  # the whole axis: nothing to cut
    sizes = [s for s in (start, length, shape[axis] - start - length) if s > 0]
    name = node.outputs[0].name
    attrs, ins = {"axis": axis}, [x]
    if (g.opset_of("") or 17) >= 13:
        ins.append(g.add_constant(f"{name}_split", np.array(sizes, np.int64)))
    else:
        attrs["split"] = sizes
    outs = []
    for size in sizes:
        shape[axis] = size
        outs.append((f"{name}_part", TensorType(x.type.dtype, tuple(shape))))
    split = g.create_node("Split", ins, outs, attrs, before=node,
                          name=f"{node.name}_split" if node.name else "")
    if not place_node(split, target).on_npu:
        split.drop_inputs()
        g.remove_node(split)
        for v in ins[1:]:
            g.remove_constant(v)
        return None
    return split.outputs[1 if start > 0 else 0]


def _moves_data(v) -> bool:
    """Whether ``v`` is data a chip moves (float or 8-bit activations), not an index or
    shape computation that stays on the host."""
    dt = getattr(getattr(v.type, "dtype", None), "name", "")
    return dt in ("f32", "f16", "bf16", "i8", "u8")


def _run(start, end, dim: int) -> tuple[int, int]:
    """``[lo, hi)`` of one axis of size ``dim`` that ONNX's clamped start and end name."""
    lo = int(start) + dim if start < 0 else int(start)
    hi = int(end) + dim if end < 0 else int(end)
    lo = min(max(lo, 0), dim)
    return lo, min(max(hi, lo), dim)


def _one_cut(node, x) -> tuple[int, int, int] | None:
    """``(axis, start, length)`` of a Slice with constant operands that cuts one axis
    with step 1 (the others whole), else None."""
    ins = [node.input(i) for i in range(1, 5)]
    if ins[0] is None or ins[1] is None or \
            any(v is not None and v.const is None for v in ins):
        return None
    starts, ends = ins[0].const.ravel(), ins[1].const.ravel()
    axes = ins[2].const.ravel() if ins[2] is not None else range(len(starts))
    steps = ins[3].const.ravel() if ins[3] is not None else [1] * len(starts)
    cuts = []
    for a, b, e, step in zip(axes, starts, ends, steps):
        a = int(a) % len(x)
        if step != 1:
            return None
        lo, hi = _run(b, e, x[a])
        if (lo, hi) != (0, x[a]):
            cuts.append((a, lo, hi - lo))
    return cuts[0] if len(cuts) == 1 and cuts[0][2] > 0 else None


def _slice(g, node, target):
    x, y = _static(node.inputs[0]), _static(node.outputs[0])
    cut = None if x is None or y is None or not _moves_data(node.inputs[0]) \
        else _one_cut(node, x)
    if cut is None:
        return None
    part = _split_part(g, node, target, *cut)
    return None if part is None else ([part], "Split")


def _gather(g, node, target):
    x, y, idx = _static(node.inputs[0]), _static(node.outputs[0]), node.input(1)
    if x is None or y is None or idx is None or idx.const is None or idx.const.ndim > 1 \
            or idx.const.size == 0 or node.inputs[0].const is not None \
            or not _moves_data(node.inputs[0]):
        return None
    axis = int(node.attrs.get("axis", 0)) % len(x)
    at = [int(i) + x[axis] if i < 0 else int(i) for i in idx.const.ravel()]
    if not all(0 <= i < x[axis] for i in at) or at != list(range(at[0], at[0] + len(at))):
        return None  # not one run of indices in order
    if idx.const.ndim == 0 and not _has(target, "Reshape"):
        return None
    part = _split_part(g, node, target, axis, at[0], len(at))
    if part is None or part is node.inputs[0] and idx.const.ndim == 1:
        return None  # refused, or all of the axis in order: nothing to rewrite
    if idx.const.ndim == 1:
        return [part], "Split"
    name = node.outputs[0].name
    return [_reshape(g, node, part, list(y), f"{name}_reshaped")], "Split, Reshape"


REWRITES = {"Squeeze": _squeeze, "Unsqueeze": _squeeze, "GlobalMaxPool": _global_pool,
            "GlobalAveragePool": _global_pool, "ReduceMax": _reduce_max, "Slice": _slice,
            "Gather": _gather}


def legalize(graph, target) -> int:
    """Rewrite the nodes ``target`` does not run (no operator, or a limit refuses them)
    where it runs a replacement; returns how many were rewritten."""
    if target.kind != "npu":
        return 0
    done = 0
    log = log_of(graph)
    for node in list(graph.nodes):
        rewrite = REWRITES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if rewrite is None or len(node.outputs) != 1:
            continue
        placed = place_node(node, target)
        if placed.on_npu:
            continue
        made = rewrite(graph, node, target)
        if made is None:
            continue
        (new,), ops = made
        _take_place(graph, node, new)
        why = f"{target.name} has no {node.op_type}" if not _has(target, node.op_type) \
            else f"{placed.reason}{f' ({placed.detail})' if placed.detail else ''}"
        log.record("legalize", node.name or new.name, "rewritten",
                   f"{why}: computed with {ops}")
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

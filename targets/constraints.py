"""The generic checks that evaluate an operator limit written in a chip file.

A limit in a chip file is data, for example::

    [[operators.limit]]
    op = "Conv"
    attr = "group"
    max = 128
    message = "Conv group must be at most 128"

The key that selects the check (here ``max``) is one of the keys of :data:`CHECKS`; the
other keys are its parameters. A check returns None when the node is within the limit,
or a short phrase with the value that broke it (``"group is 256"``); the user is shown the
limit's ``message`` and that phrase. Each check's docstring says what it tests, and the
schema reference in ``docs/targets.md`` is made from these docstrings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# ONNX defaults for the attributes limits usually read; a limit's `default` key wins.
ONNX_DEFAULTS: dict[tuple[str, str], Any] = {
    ("Conv", "group"): 1,
    ("Conv", "dilations"): 1,
    ("ConvTranspose", "group"): 1,
    ("ConvTranspose", "dilations"): 1,
    ("DepthToSpace", "mode"): "DCR",
    ("SpaceToDepth", "mode"): "DCR",
    ("LpNormalization", "p"): 2,
    ("LpNormalization", "axis"): -1,
    ("Softmax", "axis"): -1,
    ("Gemm", "transA"): 0,
    ("Gemm", "transB"): 0,
    ("Split", "axis"): 0,
}


def attribute(node, name: str, params: dict, op: str) -> Any:
    """The node's attribute ``name``: its value, the limit's default, or the ONNX default."""
    if name in node.attrs and node.attrs[name] is not None:
        return node.attrs[name]
    if "default" in params:
        return params["default"]
    return ONNX_DEFAULTS.get((op, name))


def _elements(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _show(value) -> str:
    return str(list(value)) if isinstance(value, (list, tuple)) else repr(value) \
        if isinstance(value, str) else str(value)


def attr_max(node, params: dict, op: str) -> str | None:
    """The attribute ``attr`` (each element, when it is a list) is at most ``max``."""
    value = attribute(node, params["attr"], params, op)
    if value is None:
        return None
    if any(v > params["max"] for v in _elements(value)):
        return f"{params['attr']} is {_show(value)}"
    return None


def attr_min(node, params: dict, op: str) -> str | None:
    """The attribute ``attr`` (each element, when it is a list) is at least ``min``."""
    value = attribute(node, params["attr"], params, op)
    if value is None:
        return None
    if any(v < params["min"] for v in _elements(value)):
        return f"{params['attr']} is {_show(value)}"
    return None


def attr_equals(node, params: dict, op: str) -> str | None:
    """The attribute ``attr`` equals ``equals`` (a missing attribute takes its default)."""
    value = attribute(node, params["attr"], params, op)
    if value != params["equals"]:
        return f"{params['attr']} is {_show(value)}" if value is not None \
            else f"{params['attr']} is not set"
    return None


def attr_one_of(node, params: dict, op: str) -> str | None:
    """The attribute ``attr`` is one of the values listed in ``one_of``."""
    value = attribute(node, params["attr"], params, op)
    if value not in params["one_of"]:
        return f"{params['attr']} is {_show(value)}" if value is not None \
            else f"{params['attr']} is not set"
    return None


def _input_rank(node) -> int | None:
    first = node.inputs[0] if node.inputs else None
    shape = getattr(getattr(first, "type", None), "shape", None)
    return None if shape is None else len(shape)


def _axes(node, params: dict) -> list[int] | None:
    """The axes an op works along: ``attr`` (default ``axis``/``axes``) or Slice's input 3."""
    names = [params["attr"]] if "attr" in params else ["axis", "axes"]
    for name in names:
        if node.attrs.get(name) is not None:
            return [int(a) for a in _elements(node.attrs[name])]
    if len(node.inputs) > 3 and node.inputs[3] is not None:  # Slice(data, starts, ends, axes)
        const = getattr(node.inputs[3], "const", None)
        return None if const is None else [int(a) for a in const.reshape(-1)]
    if len(node.inputs) > 1 and node.op_type == "Slice":
        rank = _input_rank(node)
        return None if rank is None else list(range(rank))  # no axes input: every axis
    return None


def axis_in(node, params: dict, op: str) -> str | None:
    """Every axis the op works along is in ``axis_in``. The axes are read from ``attr``
    (by default ``axis`` or ``axes``) or, for Slice, from its constant ``axes`` input;
    negative axes count from the end of the first input's shape."""
    axes = _axes(node, params)
    if axes is None:
        return "its axes are not known"
    rank = _input_rank(node)
    if rank is not None:
        axes = [a + rank if a < 0 else a for a in axes]
    if any(a not in params["axis_in"] for a in axes):
        return f"{'axis' if len(axes) == 1 else 'axes'} {_show(axes if len(axes) > 1 else axes[0])}"
    return None


def input_rank_max(node, params: dict, op: str) -> str | None:
    """The first input has at most ``input_rank_max`` dimensions."""
    rank = _input_rank(node)
    if rank is None:
        return "the rank of its input is not known"
    if rank > params["input_rank_max"]:
        return f"its input has rank {rank}"
    return None


def batch_max(node, params: dict, op: str) -> str | None:
    """The first input's first dimension (the batch) is a known number at most
    ``batch_max``."""
    first = node.inputs[0] if node.inputs else None
    shape = getattr(getattr(first, "type", None), "shape", None)
    if not shape or not isinstance(shape[0], int):
        return "the batch size is not known"
    if shape[0] > params["batch_max"]:
        return f"the batch is {shape[0]}"
    return None


def after(node, params: dict, op: str) -> str | None:
    """The first input is produced by one of the ops listed in ``after`` (for example a
    BatchNormalization that the chip folds into the Conv before it)."""
    first = node.inputs[0] if node.inputs else None
    producer = getattr(first, "producer", None)
    if producer is None:
        return "its input is not produced by an operator"
    if producer.op_type not in params["after"] and \
            producer.qualified_type not in params["after"]:
        return f"its input comes from {producer.op_type}"
    return None


def input_precisions(node, params: dict, op: str) -> str | None:
    """Every tensor input has an element type of one of the precisions listed in
    ``input_precisions`` (``int8``, ``fp8``, ``bf16``, ...)."""
    from .precision import precision_of

    for v in node.inputs:
        dt = getattr(getattr(v, "type", None), "dtype", None)
        if dt is not None and precision_of(dt.name) not in params["input_precisions"]:
            return f"input '{v.name}' is {dt.name}"
    return None


@dataclass(frozen=True)
class Check:
    """A generic check: the key that selects it, its function, its other keys."""

    key: str
    function: Callable
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def doc(self) -> str:
        return " ".join(self.function.__doc__.split())


CHECKS: dict[str, Check] = {c.key: c for c in [
    Check("max", attr_max, ("attr",), ("default",)),
    Check("min", attr_min, ("attr",), ("default",)),
    Check("equals", attr_equals, ("attr",), ("default",)),
    Check("one_of", attr_one_of, ("attr",), ("default",)),
    Check("axis_in", axis_in, (), ("attr",)),
    Check("input_rank_max", input_rank_max),
    Check("batch_max", batch_max),
    Check("after", after),
    Check("input_precisions", input_precisions),
]}


def select_check(keys) -> tuple[Check | None, str | None]:
    """The check a limit's keys select, or None and the reason they select none."""
    found = [CHECKS[k] for k in keys if k in CHECKS]
    if len(found) != 1:
        names = ", ".join(sorted(CHECKS))
        what = "no check key" if not found else \
            "more than one check key (" + ", ".join(c.key for c in found) + ")"
        return None, f"a limit needs exactly one of: {names}; it has {what}"
    check = found[0]
    for k in check.required:
        if k not in keys:
            return None, f"a '{check.key}' limit needs '{k}'"
    allowed = {"op", "message", check.key, *check.required, *check.optional}
    for k in keys:
        if k not in allowed:
            return None, f"key '{k}' has no meaning in a '{check.key}' limit"
    return check, None


def evaluate(node, limit, op: str | None = None) -> str | None:
    """Run one :class:`~npuc.targets.model.Limit` on a node; None when it holds."""
    return CHECKS[limit.check].function(node, dict(limit.params), op or limit.op)

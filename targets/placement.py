"""Which device runs each node: the chip, or the host CPU, and why.

A node runs on the NPU when the target's ``[operators]`` table supports its op type and
every limit on that op holds. Otherwise it runs on the CPU, and its :class:`Placement`
carries the reason the user will read: the ``message`` of the broken limit, as written in
the chip file (``Conv group must be at most 128``), or ``operator X is not supported by
<chip>``. The value that broke the limit (``group is 256``) is kept apart in ``detail``.

Fused ops the optimizer creates (``npuc::FusedConv`` with attribute ``activation``) are
placed through their rule in ``[[operators.fused]]``: the base op's limits apply, and each
op named in the epilogue attribute must be one the target fuses after the base.
"""

from __future__ import annotations

from dataclasses import dataclass

from .constraints import evaluate
from .model import OpRule, Target

NPU, CPU = "npu", "cpu"


@dataclass(frozen=True)
class Placement:
    """Where a node runs (``device`` is ``"npu"`` or ``"cpu"``) and why."""

    device: str
    reason: str
    detail: str = ""

    @property
    def on_npu(self) -> bool:
        return self.device == NPU

    def explain(self, node) -> str:
        """One sentence for the user: ``Conv node 'c1' runs on the CPU: <reason> (<detail>)``."""
        where = "the NPU" if self.on_npu else "the CPU"
        tail = f" ({self.detail})" if self.detail else ""
        return f"{node.describe()} runs on {where}: {self.reason}{tail}"


def op_key(node) -> str:
    """How chip files name a node's op: ``Conv`` for ONNX ops, ``domain::Op`` otherwise."""
    if node.domain in ("", "ai.onnx"):
        return node.op_type
    return f"{node.domain}::{node.op_type}"


def _epilogues(node, rule: OpRule) -> list[str]:
    value = node.attrs.get(rule.epilogue_attr) if rule.epilogue_attr else None
    if value is None or value == "" or value == "none":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v]
    return [str(value)]


def _check_epilogues(node, rule: OpRule, target: Target) -> Placement | None:
    ops = _epilogues(node, rule)
    if not ops:
        return None
    allowed = target.fusion.epilogues.get(rule.base, ())
    for op in ops:
        if op not in allowed:
            fused = ", ".join(allowed) if allowed else "nothing"
            return Placement(CPU, f"{target.name} does not fuse {op} after {rule.base}",
                             f"it fuses only {fused}")
    if len(ops) > target.fusion.max_epilogues:
        return Placement(CPU, f"{target.name} fuses at most {target.fusion.max_epilogues} "
                              f"operators after {rule.base}", f"this node has {len(ops)}")
    return None


def place_node(node, target: Target) -> Placement:
    """The placement of one node on ``target``."""
    op = op_key(node)
    if target.kind == CPU:
        return Placement(CPU, f"the target {target.name} is the host CPU")
    rule = target.rule(op)
    if rule is None:
        return Placement(CPU, f"operator {op} is not supported by {target.name}")
    for limit in rule.limits:
        broken = evaluate(node, limit, rule.base or op)
        if broken is not None:
            return Placement(CPU, limit.message, broken)
    if rule.base is not None:
        refused = _check_epilogues(node, rule, target)
        if refused is not None:
            return refused
    within = " within its limits" if rule.limits else ""
    return Placement(NPU, f"{target.name} runs {op}{within}")


def place(graph, target) -> dict:
    """Place every node of ``graph`` (in order) on ``target`` (a Target or its name).

    Returns a dict from each Node to its :class:`Placement`.
    """
    if not isinstance(target, Target):
        from .registry import get_target

        target = get_target(target)
    return {node: place_node(node, target) for node in graph.nodes}

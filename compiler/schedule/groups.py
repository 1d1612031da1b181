"""Fusion groups: the nodes the target runs as one kernel.

Two kinds of groups, both from the target's ``[fusion]`` table:

- an **anchor** (Conv, Gemm, MatMul, ...) followed by the epilogue ops the chip applies to
  its output before writing it (``fusion.epilogues``), at most ``fusion.max_epilogues``;
- a **chain** of elementwise ops, when ``fusion.elementwise_chains`` is true.

A node joins the group of the node before it only when it is that node's single reader,
so an intermediate never has to leave the kernel. Each refusal is recorded with its
reason. Groups run where their last node was: every input a member reads from outside is
computed before that point.
"""

from __future__ import annotations

from npuc.ir.decisions import log_of

from .model import Group
from .slices import ELEMENTWISE, base_op

CHAIN_LIMIT = 8  # elementwise ops per chain: beyond this, tiles get too many operands


# The quantizer's integer elementwise ops fuse where their float ops do: a QAdd after a
# QConv is the residual Add of the epilogue, computed on the int8 accumulator output.
INTEGER_EPILOGUES = {"QAdd": "Add", "QMul": "Mul"}


def _key(node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def _fusable_key(node) -> str:
    """How the target's fusion lists name ``node``'s op (an integer op as its float op)."""
    if node.domain == "npuc" and node.op_type in INTEGER_EPILOGUES:
        return INTEGER_EPILOGUES[node.op_type]
    return _key(node)


def _single_reader(node, graph):
    """The one node reading ``node``'s only output, or None."""
    outs = [v for v in node.outputs if v is not None]
    if len(outs) != 1 or len(node.outputs) != 1:
        return None
    v = outs[0]
    if any(o is v for o in graph.outputs):
        return None
    users = v.users
    if len(users) != 1 or len(v.uses) != 1 or users[0].graph is not graph:
        return None  # (a reader inside a subgraph: the control-flow node reads it)
    return users[0]


def form_groups(graph, devices: dict[str, tuple[str, str]], target) -> list[Group]:
    """Groups in execution order, from placement ``devices`` and the target's fusion rules."""
    log = log_of(graph)
    fusion = target.fusion
    position = {n.name: i for i, n in enumerate(graph.nodes)}
    taken: set[str] = set()
    groups: list[tuple[int, Group]] = []
    for node in graph.nodes:
        if node.name in taken:
            continue
        taken.add(node.name)
        device, reason = devices[node.name]
        if device != "npu":
            groups.append((position[node.name], Group("", "cpu", [node.name], reason)))
            continue
        base = base_op(node)
        if base in fusion.epilogues:
            allowed, limit, kind = set(fusion.epilogues[base]), fusion.max_epilogues, "epilogue"
            from npuc.targets.work import epilogue_count

            limit -= epilogue_count(node)
        elif fusion.elementwise_chains and base in ELEMENTWISE:
            allowed, limit, kind = ELEMENTWISE | {f"npuc::{op}" for op in ELEMENTWISE}, \
                CHAIN_LIMIT - 1, "chain"
        else:
            allowed, limit, kind = set(), 0, "single"
        members, tail = [node], node
        while kind != "single":
            user = _single_reader(tail, graph)
            if user is None or user.name in taken:
                break
            if devices[user.name][0] != "npu":
                break
            if _key(user) not in allowed and _fusable_key(user) not in allowed:
                log.record("fusion", user.name, "not fused",
                           f"{target.name} does not run {_key(user)} inside a {_key(node)} "
                           f"kernel", group_anchor=node.name)
                break
            if len(members) - 1 >= limit:
                log.record("fusion", user.name, "not fused",
                           f"{target.name} fuses at most {limit} ops after {_key(node)}",
                           group_anchor=node.name)
                break
            members.append(user)
            taken.add(user.name)
            tail = user
        if len(members) > 1:
            ops = ", ".join(_key(n) for n in graph.nodes if n.name in
                            {m.name for m in members[1:]})
            why = (f"{ops} fused after {_key(node)}: {target.name} applies them before "
                   "writing the result" if kind == "epilogue" else
                   f"elementwise chain {_key(node)}, {ops} runs as one vector kernel")
        else:
            why = f"{_key(node)} runs alone on {target.name}"
        groups.append((position[tail.name], Group("", "npu", [m.name for m in members], why)))
    groups.sort(key=lambda pair: pair[0])
    result = []
    for i, (_, g) in enumerate(groups):
        g.name = f"g{i:03d}"
        result.append(g)
        for n in g.nodes:
            log.record("fusion", n, g.name, g.reason, device=g.device)
    return result

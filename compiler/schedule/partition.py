"""Partition: which nodes run on the chip and which on the host CPU, each with a reason.

The reasons come from the target's placement rules (:func:`npuc.targets.place`): the
sentence written next to a limit in the chip file, or "operator X is not supported". Two
more reasons are the scheduler's own: a node whose shapes are not known after the batch
is fixed, and a node too large for the chip's SRAM even at its smallest tile (decided
later, by :mod:`npuc.compiler.schedule.tiling`).
"""

from __future__ import annotations

from npuc.ir.decisions import log_of

NPU, CPU = "npu", "cpu"


def partition(graph, target) -> dict[str, tuple[str, str]]:
    """``{node name: (device, reason)}`` for every node, recorded in the decision log."""
    from npuc.targets import place

    from .slices import shape_of

    log = log_of(graph)
    placements = place(graph, target)
    result = {}
    for node, p in placements.items():
        device, reason = p.device, p.reason + (f" ({p.detail})" if p.detail else "")
        unknown = [v.name for v in list(node.inputs) + list(node.outputs)
                   if v is not None and shape_of(v) is None]
        if device == NPU and unknown:
            device, reason = CPU, f"the shape of %{unknown[0]} is not known at compile time"
        result[node.name] = (device, reason)
        log.record("partition", node.name, "npu" if device == NPU else "cpu", reason,
                   op=node.qualified_type)
    return result

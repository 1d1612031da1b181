"""The buffers a schedule needs, with their lifetimes, named the way lowering finds them.

SRAM, per group ``gNNN`` (live only while the group runs):

- ``gNNN/in/X``: the part of input X one tile reads (two slots when double-buffered),
- ``gNNN/w/X``: constant X (weights), loaded once, or its slice for one tile (two slots
  when double-buffered) when the tiles cut the weights' columns,
- ``gNNN/t/X``: intermediate X made and used inside the kernel,
- ``gNNN/out/X``: the part of the output one tile writes (two slots when double-buffered);

and ``res/X`` for a tensor kept in SRAM from the group that makes it to the last group
that reads it. DRAM holds the other tensors (``X``, from the group that makes it to the
last that reads it; model inputs and outputs for the whole run); the weights region holds
every constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from npuc.ir.analysis import reads

from .tiling import tile_buffers, walk


@dataclass
class Buffer:
    """An SRAM buffer of one group: ``slots`` copies of ``slot`` bytes."""

    name: str
    tensor: str
    slot: int
    slots: int


def group_buffers(group, nodes, values, resident, align: int) -> dict[str, Buffer]:
    """The SRAM buffers of one NPU group for its tile choice (resident tensors excluded)."""
    from .kvcache import is_write

    if any(is_write(n) for n in nodes):
        return {}  # a cache write is a DMA from DRAM to DRAM
    choice = group.tile
    slots = 2 if choice.count > 1 else 1
    found: dict[str, Buffer] = {}
    for lo, hi in choice.ranges():  # each buffer as large as the largest tile needs it
        for kind, tensor, size, copies in tile_buffers(walk(nodes, choice.axis, lo, hi),
                                                      values, slots, align, resident):
            key = f"{group.name}/{kind}/{tensor}"
            if key not in found:
                found[key] = Buffer(key, tensor, size, copies)
            found[key].slot = max(found[key].slot, size)
    return found


def lifetimes(graph, groups, node_by_name) -> dict[str, tuple[int, int]]:
    """``{tensor: (first group, last group)}`` for every non-constant tensor groups touch."""
    span: dict[str, list[int]] = {}
    end = len(groups) - 1
    for v in graph.inputs:
        span[v.name] = [0, 0]
    for i, g in enumerate(groups):
        for name in g.nodes:
            node = node_by_name[name]
            for v in reads(node):  # what a subgraph reads from outside lives until it runs
                if v is not None and v.const is None and v.graph is graph:
                    s = span.setdefault(v.name, [i, i])
                    s[1] = max(s[1], i)
            for v in node.outputs:
                if v is not None:
                    s = span.setdefault(v.name, [i, i])
                    s[0] = min(s[0], i)
    for v in graph.outputs:
        if v.name in span:
            span[v.name][1] = end
    return {k: (a, b) for k, (a, b) in span.items()}

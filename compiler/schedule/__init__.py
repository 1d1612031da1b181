"""Scheduling: from an optimized (and maybe quantized) graph to groups, tiles and a memory
plan, driven by the target's description.

The stages, in the order :func:`schedule` runs them:

1. **partition** (:mod:`.partition`): each node on the NPU or the CPU, with the reason;
2. **fusion groups** (:mod:`.groups`): what runs as one kernel;
3. **tiling** (:mod:`.tiling`): tile height per group, by the cost model, under the SRAM;
4. **cascading**: tensors passed between NPU groups stay in SRAM when there is room over
   their whole lifetime (they then cost no DRAM traffic);
5. **memory plan** (:mod:`.memplan`): SRAM, DRAM and weight offsets, best fit;
6. **estimates** (:mod:`.estimate`): cycles per group, resident traffic discounted.

Every choice is written to the graph's decision log.
"""

from __future__ import annotations

from npuc.ir.analysis import reads
from npuc.ir.decisions import log_of
from npuc.ir.errors import NpucError
from npuc.targets.model import align_up
from npuc.targets.precision import PRECISIONS, bytes_per_element

from .buffers import group_buffers, lifetimes
from .control_flow import host_priced
from .costview import cost_view
from .epilogues import split_unfusable
from .estimate import discount_resident, group_estimate
from .groups import form_groups
from .kvcache import (
    is_write,
    kept_off_chip,
    mark_cache_storage,
    state_names,
    write_estimate,
)
from .kvcache_state import place_dram
from .memplan import Placer, plan
from .model import Allocation, Group, MemoryPlan, Schedule, TileChoice
from .partition import partition
from .slices import Need, allowed_axes, shape_of
from .storage import mark_storage
from .tile_cache import TileCache, group_key
from .tiling import choose_tile, footprint, max_footprint, part_bytes, walk

__all__ = ["schedule", "Schedule", "Group", "TileChoice", "MemoryPlan", "Allocation",
           "name_nodes"]


def name_nodes(graph) -> None:
    """Give every node a unique name (schedules, programs and messages refer to nodes by it)."""
    seen: set[str] = set()
    for i, node in enumerate(graph.nodes):
        name = node.name or f"{node.op_type}_{i}"
        while name in seen:
            name = f"{name}_{i}"
        node.name = name
        seen.add(name)


def schedule(graph, target, precision: str, pinned: dict | None = None,
             tiles: TileCache | None = None) -> Schedule:
    """Schedule ``graph`` for ``target``, estimating at ``precision``.

    ``pinned`` maps an anchor node name to ``{"axis": a, "rows": r}`` or
    ``{"device": "cpu"}`` (from a schedule file); pins are checked and obeyed.
    ``tiles`` keeps the tile of each group structure across calls (the segments of a
    model split over chips); by default a cache of this graph's own groups.
    """
    tiles = TileCache() if tiles is None else tiles
    log = log_of(graph)
    split_unfusable(graph, target)
    name_nodes(graph)
    half = next((p for p in ("bf16", "fp16") if p in target.quant.dtypes), None)
    saved = mark_storage(graph, precision, half)
    mark_cache_storage(graph, precision)
    if saved:
        fmt = half if precision == "fp8" else precision
        log.record("schedule", graph.name, f"weights stored in {fmt}",
                   f"{saved} bytes saved: the weights are exact in {fmt}, so the blob, "
                   "SRAM and DRAM hold them at 2 bytes per element")
    nodes = {n.name: n for n in graph.nodes}
    values = {v.name: v for v in graph.values()}
    devices = partition(graph, target)
    groups = form_groups(graph, devices, target)
    _check_anchors(pinned or {}, groups)
    for g in groups:
        if g.device == "npu" and (pinned or {}).get(g.anchor, {}).get("device") == "cpu":
            g.device, g.reason = "cpu", "pinned to the CPU by the schedule file"
            log.record("partition", g.anchor, "cpu", g.reason, group=g.name)
    costed = cost_view(graph, precision)
    cost_nodes = {n.name: n for n in costed.nodes}
    from npuc.targets import get_target

    host = get_target("cpu")
    budget = target.memory.sram_bytes
    for g in groups:
        members = [nodes[n] for n in g.nodes]
        priced = [cost_nodes[n] for n in g.nodes]
        if g.device == "npu" and is_write(members[0]):
            g.tile = TileChoice(None, 1, 1, "a DMA of the new rows into the KV cache, in "
                                "place: no SRAM buffer, no copy of the cache")
            g.estimate = write_estimate(members[0], target, precision)
            log.record("tiling", g.anchor, "cache write", g.tile.reason, group=g.name)
        elif g.device == "npu":
            pin = (pinned or {}).get(g.anchor)
            if pin and "rows" in pin:
                g.tile, g.estimate = _pinned_tile(g, members, values, priced, target, pin)
            else:
                choice, est, size = _tile(members, values, priced, target, budget,
                                          precision, tiles, g.name)
                if choice is None:
                    g.device = "cpu"
                    g.reason = (f"needs {size} bytes of SRAM even at its smallest tile; "
                                f"{target.name} has {budget}")
                    log.record("tiling", g.anchor, "cpu", g.reason, group=g.name)
                else:
                    g.tile, g.estimate = choice, est
                    g.tile.reason = _tile_reason(choice, size, budget, est)
                    log.record("tiling", g.anchor, _tile_action(choice), g.tile.reason,
                               group=g.name, footprint=size)
        if g.device == "cpu":
            g.tile = TileChoice(None, 1, 1, "runs on the host CPU")
            g.estimate = group_estimate(host_priced([nodes[n] for n in g.nodes]), host, 1.0,
                                        g.name)
    sched = Schedule(target.name, groups, precision=precision)
    _plan_memory(graph, sched, nodes, values, target)
    check_capacity(sched, target, graph)
    sched.host_transfer_s = host_transfer_seconds(graph, sched, nodes, target)
    if sched.host_transfer_s:
        log.record("schedule", graph.name, "host transfers priced",
                   f"{sched.host_transfer_s:.3g} s over the {target.name}'s host link: the "
                   "model's inputs and outputs and the tensors host CPU groups exchange")
    for tensor in sched.resident:
        log.record("cascade", tensor, "kept in SRAM",
                   "the tensor stays on chip between the groups that make and read it, "
                   "saving its DRAM store and load")
    return sched


def _tile(members, values, priced, target, budget, precision, tiles: TileCache, name):
    """:func:`choose_tile` for a group, or its answer for a group of the same structure
    (:mod:`.tile_cache`)."""
    key = group_key(members, target, budget, precision)
    found = tiles.get(key)
    if found is not None:
        return found
    answer = choose_tile(members, values, priced, target, budget,
                         lambda c, f, t, cols: group_estimate(c, target, f, name, cols))
    tiles.put(key, answer)
    return answer


def _check_anchors(pinned: dict, groups) -> None:
    """A pin must name the first node of a group: a pin on any other node would be
    silently ignored."""
    anchors = {g.anchor for g in groups}
    for name in pinned:
        if name not in anchors:
            inside = next((g for g in groups if name in g.nodes), None)
            where = (f"it is inside group {inside.name}, whose first node is "
                     f"{inside.anchor!r}" if inside else "it starts no group")
            raise NpucError(f"schedule file: the pin on node {name!r} names no group's first "
                            f"node ({where}); pins apply to a group's first node")


def host_transfer_seconds(graph, sched: Schedule, nodes, target) -> float:
    """Time on the host link: the model's inputs in and outputs out, and each tensor that
    passes between an NPU group and a host CPU group (0 when the chip declares no link)."""
    bandwidth = target.memory.host_bandwidth_bytes_per_s
    if not bandwidth or target.kind == "cpu":
        return 0.0
    device = {n: g.device for g in sched.groups for n in g.nodes}
    state = state_names(graph)  # a KV cache stays on the device between programs
    crossing = {id(v): v for v in list(graph.inputs) + list(graph.outputs)
                if v.name not in state}
    for node in graph.nodes:
        for v in node.inputs:
            p = v.producer if v is not None else None
            if p is not None and device.get(p.name) != device.get(node.name):
                crossing[id(v)] = v
    size = sum(part_bytes(v, Need.whole(), 1) for v in crossing.values()
               if shape_of(v) is not None)
    return size / bandwidth


def check_capacity(sched: Schedule, target, graph=None, what: str = "the program") -> None:
    """The memory plan fits the chip: SRAM peak within its SRAM, and weights, inputs and
    outputs (a decoder's KV cache among them) and activations within its DRAM; else an
    NpucError with the sizes."""
    plan_ = sched.plan
    sram = plan_.peak("sram")
    if sram > target.memory.sram_bytes:
        raise NpucError(f"{what} needs {sram} bytes of SRAM at its peak; {target.name} has "
                        f"{target.memory.sram_bytes}")
    weights, arena = plan_.peak("weights"), plan_.peak("dram")
    total = weights + arena
    if total > target.memory.dram_bytes:
        io = ""
        if graph is not None:
            align = target.memory.dma_alignment_bytes
            values = {id(v): v for v in list(graph.inputs) + list(graph.outputs)}.values()
            io_bytes = sum(part_bytes(v, Need.whole(), align) for v in values
                           if shape_of(v) is not None)
            io = f" ({io_bytes} of them inputs and outputs, a decoder's KV cache among them)"
            from .kvcache import entries
            from .kvcache_state import cache_bytes

            if entries(graph):
                meta = graph.meta["kv_cache"]
                io = (f" ({cache_bytes(graph)} of them the KV cache of "
                      f"{meta.get('rows', 1)} row(s), the largest decode batch, x "
                      f"{meta['max_seq']} positions)")
        raise NpucError(
            f"{what} does not fit {target.name}'s DRAM: {weights} bytes of weights + "
            f"{arena} bytes of inputs, outputs and activations{io} = {total} bytes; "
            f"{target.name} has {target.memory.dram_bytes}")


def _tile_action(choice: TileChoice) -> str:
    if choice.axis is None:
        return "one tile"
    return f"{choice.count} tiles of {choice.rows} along axis {choice.axis}"


def _tile_reason(choice: TileChoice, size: int, budget: int, est: dict) -> str:
    where = f"needs {size} of {budget} bytes of SRAM"
    if choice.axis is None:
        return f"the whole group fits on chip as one tile ({where}); {est['bound']}-bound"
    return (f"fastest tile by the cost model that fits ({where}, inputs and outputs "
            f"double-buffered); {est['bound']}-bound at {est['utilisation']:.0%} MAC use")


def _pinned_tile(g, members, values, priced, target, pin) -> tuple[TileChoice, dict]:
    tail = members[-1]
    axis, rows = pin.get("axis"), int(pin["rows"])
    if axis is None:
        choice = TileChoice(None, 1, 1, "pinned by the schedule file", pinned=True)
    else:
        shape = shape_of(tail.outputs[0])
        if axis not in allowed_axes(tail) or not isinstance(axis, int):
            raise NpucError(f"schedule file: group {g.anchor} cannot be tiled along axis "
                            f"{axis}")
        if not 1 <= rows <= shape[axis]:
            raise NpucError(f"schedule file: group {g.anchor} tile rows {rows} is outside "
                            f"1..{shape[axis]}")
        choice = TileChoice(axis, rows, shape[axis], "pinned by the schedule file", pinned=True)
    align = target.memory.dma_alignment_bytes
    if axis is None:  # one tile: the whole group at once
        size = footprint(values, walk(members, None, 0, 1), 1, align)
    else:
        size = max_footprint(members, values, choice.axis, choice.rows, choice.extent, align)
    if size is None:
        raise NpucError(f"schedule file: group {g.anchor} cannot be tiled along axis {axis}")
    if size > target.memory.sram_bytes:
        raise NpucError(f"schedule file: the tile pinned for {g.anchor} ("
                        f"{_tile_action(choice)}) needs {size} bytes of SRAM; {target.name} "
                        f"has {target.memory.sram_bytes}")
    log_of(members[0].graph).record("tiling", g.anchor, _tile_action(choice),
                                    "pinned by the schedule file", group=g.name)
    from .tiling import with_setup

    cols = axis is not None and axis == len(shape_of(tail.outputs[0])) - 1
    est = group_estimate(priced, target, choice.rows / choice.extent, g.name, cols)
    return choice, with_setup(est, choice.count, target)


def _plan_memory(graph, sched: Schedule, nodes, values, target) -> None:
    """Cascading decisions, then SRAM, DRAM and weight offsets; estimates discounted."""
    groups = sched.groups
    align = target.memory.dma_alignment_bytes
    span = lifetimes(graph, groups, nodes)
    producer = {v.name: i for i, g in enumerate(groups) for n in g.nodes
                for v in nodes[n].outputs if v is not None}
    readers: dict[str, set[int]] = {}
    for i, g in enumerate(groups):
        for n in g.nodes:
            for v in reads(nodes[n]):
                if v is not None and v.const is None:
                    readers.setdefault(v.name, set()).add(i)
    outputs = {v.name for v in graph.outputs}
    crossing = {t for t in span if t in outputs or t not in producer or
                groups[producer[t]].device == "cpu" or readers.get(t, set()) - {producer[t]}}
    # 1. tile buffers, group by group (they never outlive their group)
    per_group = {}
    items = []
    for i, g in enumerate(groups):
        if g.device != "npu":
            continue
        bufs = group_buffers(g, [nodes[n] for n in g.nodes], values, set(), align)
        per_group[i] = bufs
        items += [(b.name, b.slot * b.slots, i, i) for b in bufs.values()]
    placed = plan(items, align, None, "sram")
    # 2. cascading: keep NPU-to-NPU tensors on chip where they fit over their lifetime
    off_chip = kept_off_chip(graph)
    candidates = [t for t in sorted(crossing, key=lambda t: (span[t][0], t))
                  if t in producer and t not in outputs and t not in off_chip
                  and groups[producer[t]].device == "npu"
                  and readers.get(t) and all(groups[r].device == "npu" for r in readers[t])]
    resident = []
    placer = Placer(align, placed, "sram")
    for t in candidates:
        size = part_bytes(values[t], Need.whole(), align)
        if placer.place(f"res/{t}", size, span[t][0], span[t][1],
                        target.memory.sram_bytes) is not None:
            resident.append(t)
    placed = placer.allocations
    sched.resident = resident
    res = set(resident)
    items = []
    for i, g in enumerate(groups):
        if g.device != "npu":
            continue
        bufs = group_buffers(g, [nodes[n] for n in g.nodes], values, res, align)
        per_group[i] = bufs
        items += [(b.name, b.slot * b.slots, i, i) for b in bufs.values()]
    items += [(f"res/{t}", part_bytes(values[t], Need.whole(), align), *span[t])
              for t in resident]
    sram = plan(items, align, target.memory.sram_bytes, "sram")
    if sram is None:  # best fit from scratch did worse than the incremental placement
        keep = {name for name, *_ in items}
        sram = [a for a in placed if a.name in keep]
    # 3. DRAM: tensors that cross groups and are not resident; 4. weights, in order of use
    dram_items = [(t, part_bytes(values[t], Need.whole(), align), *span[t])
                  for t in sorted(crossing - res)]
    dram = place_dram(graph, dram_items, span, align, len(groups) - 1)
    weights, offset = [], 0
    seen = set()
    for g in groups:
        for n in g.nodes:
            for v in reads(nodes[n]):
                if v is not None and v.const is not None and v.name not in seen:
                    seen.add(v.name)
                    size = align_up(max(part_bytes(v, Need.whole(), 1), 1), align)
                    weights.append(Allocation(v.name, "weights", offset, size, 0,
                                              len(groups) - 1))
                    offset += size
    sched.plan = MemoryPlan(align, sram + dram + weights, target.memory.sram_bytes)
    # 5. estimates without the traffic of resident tensors
    # a float32 program is estimated in each value's own type
    itemsize = bytes_per_element(sched.precision) if sched.precision in PRECISIONS and \
        sched.precision != "fp32" else None
    for g in groups:
        if g.device != "npu":
            continue
        kept = 0
        for n in g.nodes:
            node = nodes[n]
            for v in list(node.inputs) + list(node.outputs):
                if v is not None and v.name in res:
                    numel = part_bytes(v, Need.whole(), 1) // v.type.dtype.itemsize
                    kept += numel * (itemsize or v.type.dtype.itemsize)
        g.estimate = discount_resident(g.estimate, int(kept), target.compute.clock_hz)

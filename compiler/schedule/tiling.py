"""Tiling: how many output rows each fused group computes per tile.

For a group, :func:`walk` follows a tile of the last node's output back through the
members (using :mod:`npuc.compiler.schedule.slices`) and finds what every member reads.
:func:`choose_tile` then tries tile heights from the whole output down to one row: each
candidate must fit the SRAM with its inputs and outputs double-buffered (the next tile
loads while this one computes) and its weights loaded once; of those that fit, the cost
model's fastest wins, fewer tiles breaking ties. A group too large for the SRAM at any
tile goes to the CPU, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from npuc.targets.model import align_up

from .model import TileChoice
from .slices import Need, TileRule, allowed_axes, gathered_table, shape_of, tile_rule
from .storage import stored_dtype


@dataclass
class Step:
    """One member of a group, for one tile: its rule and the part of its output it makes."""

    node: object
    rule: TileRule
    out: Need


@dataclass
class TileWalk:
    """What a group does for one tile: its steps in order and its external reads."""

    steps: list[Step]
    reads: dict[str, Need]        # external value name -> the part read
    internal: set[str]            # values made and used inside the group
    gathered: set[str] = field(default_factory=set)  # tables read row by row from DRAM


def _union(a: Need | None, b: Need) -> Need:
    if a is None:
        return b
    if a.axis is None or b.axis is None or a.axis != b.axis:
        return Need.whole()
    return Need(a.axis, min(a.lo, b.lo), max(a.hi, b.hi))


def _unread(v) -> bool:
    """Nothing reads ``v``: no node, and no graph (or enclosing graph) has it as output."""
    g = v.graph
    while g is not None:
        if any(o is v for o in g.outputs):
            return False
        g = g.parent
    return not v.uses


def walk(nodes, axis: int | None, lo: int, hi: int) -> TileWalk | None:
    """The steps of ``nodes`` (a group) for output tile ``[lo, hi)`` of ``axis``, or None
    when some member cannot be cut that way. ``axis=None`` walks the whole group once."""
    tail = nodes[-1].outputs[0]
    # an output nobody reads (a Split's unused part) is written to a scratch buffer too
    internal = {v.name for i, n in enumerate(nodes) for v in n.outputs
                if v is not None and (i < len(nodes) - 1 or _unread(v))}
    wanted: dict[str, Need] = {tail.name: Need(axis, lo, hi) if axis is not None
                               else Need.whole()}
    steps, reads, gathered = [], {}, set()
    for node in reversed(nodes):
        need = wanted.get(node.outputs[0].name)
        if need is None:
            return None
        if need.axis is None:
            if axis is not None:
                return None
            rule = TileRule([None if v is None else Need.whole() for v in node.inputs])
        else:
            rule = tile_rule(node, need.axis, need.lo, need.hi)
            if rule is None:
                return None
        steps.append(Step(node, rule, need))
        for i, (v, n) in enumerate(zip(node.inputs, rule.needs)):
            if v is None:
                continue
            if gathered_table(node, i):
                gathered.add(v.name)
            if v.name in internal:
                wanted[v.name] = _union(wanted.get(v.name), n)
            else:
                reads[v.name] = _union(reads.get(v.name), n)
    steps.reverse()
    return TileWalk(steps, reads, internal, gathered)


def part_shape(value, need: Need) -> tuple[int, ...]:
    shape = list(shape_of(value))
    if need.axis is not None:
        shape[need.axis] = need.hi - need.lo
    return tuple(shape)


def part_bytes(value, need: Need, align: int) -> int:
    """Bytes of the part ``need`` of ``value``, at the format it is stored in, aligned."""
    return align_up(math.prod(part_shape(value, need)) * stored_dtype(value).itemsize, align)


def tile_buffers(tw: TileWalk, values: dict, slots: int, align: int,
                 resident=frozenset()):
    """The SRAM buffers one tile needs, as ``(kind, tensor, bytes, copies)``.

    Kinds: ``w`` a constant (loaded once, or a slice per tile streamed in ``slots``
    copies), ``in`` an input part, ``t`` an intermediate made and used inside the kernel,
    ``out`` an output part. Resident tensors and gathered tables take no tile buffer.
    """
    for name, need in tw.reads.items():
        v = values[name]
        if name in resident or name in tw.gathered:
            continue
        if v.const is not None and need.axis is None:
            yield "w", name, part_bytes(v, Need.whole(), align), 1
        elif v.const is not None:
            yield "w", name, part_bytes(v, need, align), slots
        else:
            yield "in", name, part_bytes(v, need, align), slots
    for step in tw.steps:
        for i, out in enumerate(step.node.outputs):
            if out is None:
                continue
            part = step.out if i == 0 else Need.whole()
            if out.name in tw.internal:
                yield "t", out.name, part_bytes(out, part, align), 1
            elif out.name not in resident:
                yield "out", out.name, part_bytes(out, part, align), slots


def footprint(values: dict, tw: TileWalk, tiles: int, align: int,
              resident: frozenset = frozenset()) -> int:
    """SRAM bytes one tile needs: its buffers, streamed ones twice when there are several
    tiles."""
    slots = 2 if tiles > 1 else 1
    return sum(size * copies for _, _, size, copies in
               tile_buffers(tw, values, slots, align, resident))


def candidate_rows(extent: int) -> list[int]:
    """Tile heights worth trying, largest first: the whole, then ``ceil(extent / t)`` for
    tile counts t that a schedule would use (more tiles only add setup)."""
    counts = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 48, 64, 112, 224]
    rows = sorted({-(-extent // t) for t in counts if t <= extent}, reverse=True)
    return rows


def max_footprint(nodes, values, axis, rows, extent, align, resident=frozenset()) -> int | None:
    """The largest tile's footprint (halo tiles in the middle included), or None."""
    choice = TileChoice(axis, rows, extent)
    ranges = choice.ranges()
    sample = ranges if len(ranges) <= 8 else ranges[:3] + ranges[len(ranges) // 2:][:1] + \
        ranges[-2:]
    worst = 0
    for lo, hi in sample:
        tw = walk(nodes, axis, lo, hi)
        if tw is None:
            return None
        worst = max(worst, footprint(values, tw, choice.count, align, resident))
    return worst


# A tile costs a fixed setup on top of its work: writing DMA descriptors and waiting on
# the synchronization between load, compute and store. Not public for any chip here;
# a few hundred cycles is typical of DMA engines with descriptor queues.
TILE_SETUP_CYCLES = 200


def with_setup(est: dict, tiles: int, target) -> dict:
    """``est`` plus the setup cycles of ``tiles`` tiles."""
    out = dict(est)
    out["setup_cycles"] = TILE_SETUP_CYCLES * tiles
    out["cycles"] = est["cycles"] + out["setup_cycles"]
    out["seconds"] = out["cycles"] / target.compute.clock_hz
    return out


def choose_tile(nodes, values: dict, cost_nodes, target, budget: int,
                estimate) -> tuple[TileChoice | None, dict, int]:
    """The best tile for a group under ``budget`` bytes of SRAM.

    ``estimate(cost_nodes, tile_fraction, tiles, columns)`` prices a candidate (``columns``
    when the tiles cut the output's last axis, the anchor's ``n``). Returns
    ``(choice, estimate, footprint)``; ``choice`` is None when nothing fits.
    """
    align = target.memory.dma_alignment_bytes
    tail = nodes[-1]
    out_shape = shape_of(tail.outputs[0])
    best = None
    smallest = None
    axes = [a for a in allowed_axes(tail) if out_shape[a] > 1]
    for axis in axes:
        extent = out_shape[axis]
        if walk(nodes, axis, 0, extent) is None:
            continue
        worse = 0
        for rows in candidate_rows(extent):
            size = max_footprint(nodes, values, axis, rows, extent, align)
            if size is None:
                break
            smallest = size if smallest is None else min(smallest, size)
            if size > budget:
                continue
            count = -(-extent // rows)
            columns = axis == len(out_shape) - 1 and len(out_shape) > 1
            est = with_setup(estimate(cost_nodes, rows / extent, count, columns), count,
                             target)
            key = (est["cycles"], count)
            if best is None or key < best[0]:
                best = (key, TileChoice(axis, rows, extent), est, size)
                worse = 0
            else:
                worse += 1
                if worse >= 3:  # past the best: more tiles only add setup and halos
                    break
        if best is not None:
            break  # the preferred axis has a fitting tile: keep to it
    whole = walk(nodes, None, 0, 1)
    size = footprint(values, whole, 1, align)
    smallest = size if smallest is None else min(smallest, size)
    if size <= budget:
        est = with_setup(estimate(cost_nodes, 1.0, 1, False), 1, target)
        if best is None or (est["cycles"], 1) <= best[0]:
            best = ((est["cycles"], 1), TileChoice(None, 1, 1), est, size)
    if best is None:
        return None, {"smallest": smallest}, smallest
    _, choice, est, size = best
    return choice, est, size

"""The analytical cost model: cycles for a node or a fused group, tile by tile.

For each tile of the group's anchor (its largest matrix product, see
:mod:`npuc.targets.work`):

- **compute**: the tile occupies ``ceil(m/units)*units x ceil(n/rows)*rows x
  ceil(k/cols)*cols`` MAC slots of the chip's ``units`` arrays of ``[rows, cols]`` when
  the units share out the rows ``m``, or ``m x ceil(n/(rows*units))*rows*units x
  ceil(k/cols)*cols`` when they share out the columns ``n`` (what a compiler does for a
  product with few rows, as a decode step's ``m = batch`` is), whichever fills better;
  utilisation is useful MACs over slots, and cycles are slots over the MACs per cycle that
  the chip's peak gives at the precision (``peak / (2 * clock)``). Vector work (epilogues,
  softmax, elementwise ops) runs in the pipeline behind the MAC array, so a tile's compute
  is ``max(MAC cycles, vector elements / vector elements per cycle)``.
- **DMA**: bytes in and out at the tensors' element sizes (of a row Gather's constant
  table only the rows it reads), each transfer rounded up to the
  DMA alignment, over the DRAM bandwidth (``bytes * clock / bandwidth`` cycles). A tile
  reads its share of the inputs (``m x k``) and weights (``k x n``) and writes its share of
  the outputs, so inputs are read once per tile along ``n`` and weights once per tile
  along ``m``.
- **overlap**: with double buffering the next tile loads while this one computes, so
  ``cycles = max(compute, dma) + prologue``, where the prologue is the first tile's load
  when compute bounds (nothing to compute yet) or the last tile's compute when DMA bounds;
  without it ``serial_cycles = compute + dma``. One tile cannot overlap: both are equal.

Beside every estimate is the roofline: the time at peak compute and the time to move the
minimum bytes at full bandwidth, and which of the two bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product

from .model import Target, align_up
from .precision import precision_of
from .work import GemmView, gemm_views, nbytes, read_bytes, vector_elements


@dataclass(frozen=True)
class Tile:
    """A tile of the anchor's matrix product: ``m`` positions, ``n`` channels, ``k`` depth."""

    m: int
    n: int
    k: int


@dataclass(frozen=True)
class Roofline:
    """The roofline bound: time at peak compute vs time at full DRAM bandwidth."""

    ops: float
    bytes: int
    compute_s: float
    memory_s: float

    @property
    def seconds(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        """``"compute"`` or ``"memory"``: which one limits the time."""
        return "compute" if self.compute_s >= self.memory_s else "memory"

    @property
    def intensity(self) -> float:
        """Operations per byte moved."""
        return self.ops / self.bytes if self.bytes else math.inf


@dataclass(frozen=True)
class Estimate:
    """The cost of a node or fused group on a target, with its roofline."""

    name: str
    precision: str
    macs: int
    vector_elements: int
    input_bytes: int
    weight_bytes: int
    output_bytes: int
    dma_bytes: int          # bytes actually moved: re-reads of tiling and alignment included
    tiles: int
    utilisation: float      # useful MACs / occupied MAC slots (1.0 without MACs)
    compute_cycles: float
    dma_cycles: float
    prologue_cycles: float
    cycles: float           # double-buffered: max(compute, dma) + prologue
    serial_cycles: float    # compute + dma, with no overlap
    seconds: float
    roofline: Roofline
    notes: tuple[str, ...] = field(default=())

    @property
    def bound(self) -> str:
        """``"compute"`` or ``"dma"``: which one sets the double-buffered time."""
        return "compute" if self.compute_cycles >= self.dma_cycles else "dma"


def _splits(total: int, size: int) -> list[tuple[int, int]]:
    """``(count, size)`` pairs covering ``total`` with tiles of ``size``: full ones, then
    the remainder."""
    size = max(1, min(size, total))
    full, rest = divmod(total, size)
    return [(full, size)] + ([(1, rest)] if rest else [])


def _slots(m: int, n: int, k: int, target: Target) -> int:
    units, (rows, cols) = target.compute.units, target.compute.mac_array
    depth = math.ceil(k / cols) * cols
    by_rows = (math.ceil(m / units) * units) * (math.ceil(n / rows) * rows)
    by_columns = m * (math.ceil(n / (rows * units)) * rows * units)
    return min(by_rows, by_columns) * depth


def _precision(nodes, target: Target) -> tuple[str, list[str]]:
    first = next((v for n in nodes for v in n.inputs if v is not None), None)
    dt = getattr(getattr(first, "type", None), "dtype", None)
    prec = precision_of(dt.name) if dt is not None else None
    if prec is not None and target.peak_ops(prec) is not None:
        return prec, []
    preferred = target.quant.preferred
    return preferred, [f"{dt} is not a precision of {target.name}; estimated at {preferred}"]


def _boundary(nodes) -> tuple[int, int, int]:
    """Bytes that cross the group boundary: (activations in, constants in, outputs)."""
    inside = {id(n) for n in nodes}
    seen: set[int] = set()
    act = weights = out = 0
    for node in nodes:
        for v in node.inputs:
            if v is None or id(v) in seen or (v.producer is not None and
                                               id(v.producer) in inside):
                continue
            seen.add(id(v))
            if v.const is not None:
                weights += read_bytes(node, v)
            else:
                act += nbytes(v, node)
        for v in node.outputs:
            graph_out = v.graph is not None and any(o is v for o in v.graph.outputs)
            if graph_out or not v.uses or any(id(u) not in inside for u, _ in v.uses):
                out += nbytes(v, node)
    return act, weights, out


def estimate_group(nodes, target: Target, tile: Tile | None = None,
                   name: str | None = None) -> Estimate:
    """The cost of running ``nodes`` as one kernel; ``tile`` splits the anchor product
    (the whole group is one tile when it is None)."""
    nodes = list(nodes)
    prec, notes = _precision(nodes, target)
    clock = target.compute.clock_hz
    macs_per_cycle = target.compute.macs_per_cycle(prec)
    # a product over an empty axis does no work (and would divide by zero below)
    views = [v for n in nodes for v in gemm_views(n) if v.macs > 0]
    elements = sum(vector_elements(n) for n in nodes)
    in_b, w_b, out_b = _boundary(nodes)
    anchor = max(views, key=lambda v: v.macs) if views else GemmView(1, max(elements, 1), 1, 1)
    other_cycles = sum(_slots(v.m, v.n, v.k, target) * v.groups for v in views
                       if v is not anchor) / macs_per_cycle
    vector_cycles = elements / target.compute.vector_elements_per_cycle
    t = tile or Tile(anchor.m, anchor.n, anchor.k)
    align = target.memory.dma_alignment_bytes
    per_byte = clock / target.memory.dram_bandwidth_bytes_per_s
    work = anchor.m * anchor.n * anchor.k
    parts = []  # (count, compute cycles, dma cycles, dma bytes, slots) per kind of tile
    for (cm, sm), (cn, sn), (ck, sk) in product(_splits(anchor.m, t.m), _splits(anchor.n, t.n),
                                                _splits(anchor.k, t.k)):
        share = sm * sn * sk / work  # of one group's product; a tile runs in each group
        slots = _slots(sm, sn, sk, target) if views else 0
        # the other products and the vector work are the whole node's, shared out over
        # every tile of every group
        whole = share / anchor.groups
        compute = max(slots / macs_per_cycle + whole * other_cycles, whole * vector_cycles)
        moved = sum(align_up(b, align) for b in (
            in_b * sm * sk / (anchor.m * anchor.k) / anchor.groups,
            w_b * sk * sn / (anchor.k * anchor.n) / anchor.groups,
            out_b * share / anchor.groups))
        parts.append((cm * cn * ck * anchor.groups, compute, moved * per_byte, moved, slots))
    tiles = sum(p[0] for p in parts)
    compute = sum(p[0] * p[1] for p in parts)
    dma = sum(p[0] * p[2] for p in parts)
    prologue = parts[0][2] if compute >= dma else parts[-1][1]
    if tiles == 1:
        prologue = min(compute, dma)
    slots = sum(p[0] * p[4] for p in parts)
    macs = sum(v.macs for v in views)
    cycles = max(compute, dma) + prologue
    ops = 2.0 * macs
    compute_s = ops / target.peak_ops(prec) if macs else \
        elements / (target.compute.vector_elements_per_cycle * clock)
    roof = Roofline(ops + elements, in_b + w_b + out_b, compute_s,
                    (in_b + w_b + out_b) / target.memory.dram_bandwidth_bytes_per_s)
    return Estimate(
        name=name or " + ".join(n.describe() for n in nodes), precision=prec, macs=macs,
        vector_elements=elements, input_bytes=in_b, weight_bytes=w_b, output_bytes=out_b,
        dma_bytes=int(sum(p[0] * p[3] for p in parts)), tiles=tiles,
        utilisation=(anchor.macs / slots) if views and slots else 1.0,
        compute_cycles=compute, dma_cycles=dma, prologue_cycles=prologue, cycles=cycles,
        serial_cycles=compute + dma, seconds=cycles / clock, roofline=roof, notes=tuple(notes))


def estimate_node(node, target: Target, tile: Tile | None = None) -> Estimate:
    """The cost of one node on ``target`` (see :func:`estimate_group`)."""
    return estimate_group([node], target, tile, name=node.describe())

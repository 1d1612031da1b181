"""The schedule's data: fusion groups, their tiles, and the memory plan.

A :class:`Schedule` is what the scheduling stages produce and what lowering reads. It is
plain data (names and numbers, no IR objects), so it can be written to a JSON file and
read back (:mod:`npuc.compiler.schedule.schedule_file`).

Tiles cut a group's output along one axis (``axis``) into runs of ``rows`` indices; the
last tile may be shorter. ``axis = None`` means the group runs as one tile.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TileChoice:
    """How a group is cut: ``rows`` indices of ``axis`` per tile, and why."""

    axis: int | None
    rows: int
    extent: int              # the size of the output along ``axis`` (1 when axis is None)
    reason: str = ""
    pinned: bool = False     # True when read from a schedule file

    @property
    def count(self) -> int:
        """The number of tiles."""
        return 1 if self.axis is None else -(-self.extent // self.rows)

    def ranges(self) -> list[tuple[int, int]]:
        """``[lo, hi)`` of each tile along the axis."""
        if self.axis is None:
            return [(0, self.extent)]
        return [(lo, min(lo + self.rows, self.extent)) for lo in range(0, self.extent, self.rows)]


@dataclass
class Group:
    """Nodes the target runs as one kernel (or one CPU node), in execution order."""

    name: str
    device: str              # "npu" or "cpu"
    nodes: list[str]         # node names, anchor first
    reason: str              # why these nodes form this group (or why it is on the CPU)
    tile: TileChoice = field(default_factory=lambda: TileChoice(None, 1, 1))
    estimate: dict = field(default_factory=dict)  # seconds, cycles, bound, roofline, ...

    @property
    def anchor(self) -> str:
        return self.nodes[0]


@dataclass
class Allocation:
    """A buffer of ``size`` bytes at ``offset`` in ``space``, live over groups
    ``[first, last]`` (indices into the schedule's groups)."""

    name: str
    space: str               # "sram", "dram" (the activation arena) or "weights"
    offset: int
    size: int
    first: int
    last: int

    def overlaps_in_time(self, other: "Allocation") -> bool:
        return self.first <= other.last and other.first <= self.last

    def overlaps_in_space(self, other: "Allocation") -> bool:
        return self.offset < other.offset + other.size and other.offset < self.offset + self.size


@dataclass
class MemoryPlan:
    """Every buffer's place, and the peaks."""

    alignment: int
    allocations: list[Allocation] = field(default_factory=list)
    sram_capacity: int = 0

    def in_space(self, space: str) -> list[Allocation]:
        return [a for a in self.allocations if a.space == space]

    def peak(self, space: str) -> int:
        return max((a.offset + a.size for a in self.in_space(space)), default=0)

    def find(self, name: str) -> Allocation | None:
        for a in self.allocations:
            if a.name == name:
                return a
        return None


@dataclass
class Schedule:
    """Groups in execution order, tensors kept in SRAM between groups, and the memory plan."""

    target: str
    groups: list[Group]
    resident: list[str] = field(default_factory=list)  # tensors kept on chip across groups
    plan: MemoryPlan | None = None
    precision: str = "fp32"  # the precision estimates are made at
    host_transfer_s: float = 0.0  # inputs, outputs and CPU groups' tensors over the host link

    def group_of(self, node_name: str) -> Group | None:
        for g in self.groups:
            if node_name in g.nodes:
                return g
        return None

    @property
    def estimated_seconds(self) -> float:
        return sum(g.estimate.get("seconds", 0.0) for g in self.groups) + self.host_transfer_s

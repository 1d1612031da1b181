"""The parsed form of a chip file: frozen dataclasses, one per TOML table.

:mod:`npuc.targets.schema` reads and checks a file and builds these; everything else
(placement, cost model, the ``npuc targets`` command, the scheduler) reads them. The
field names are the TOML key names, so ``target.memory.sram_bytes`` is ``sram_bytes`` in
the ``[memory]`` table.

Dtype names in a chip file are the precision names of :mod:`npuc.targets.precision`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any


def frozen_map(d: Mapping | None = None) -> Mapping:
    """A read-only view of a dict, so that a Target cannot be changed after loading."""
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True, eq=False)
class ComputeUnit:
    """The compute engines: ``units`` copies of a ``mac_array`` of ``[rows, cols]`` MACs.

    Rows span output channels, columns span the reduction (input channels x kernel), and
    units span output positions (batch x spatial). ``peak_ops_per_s`` counts a MAC as two
    operations, per precision name. ``vector_elements_per_cycle`` is the throughput of the
    units that do elementwise work and reductions, all units together.
    """

    units: int
    mac_array: tuple[int, int]
    clock_hz: float
    peak_ops_per_s: Mapping[str, float]
    vector_elements_per_cycle: float

    def macs_per_cycle(self, precision: str) -> float:
        """MACs per clock cycle at ``precision``, from its peak (a MAC is 2 ops)."""
        return self.peak_ops_per_s[precision] / (2.0 * self.clock_hz)


@dataclass(frozen=True, eq=False)
class Memory:
    """On-chip SRAM and off-chip DRAM."""

    sram_bytes: int
    sram_banks: int
    dram_bytes: int
    dram_bandwidth_bytes_per_s: float
    dma_alignment_bytes: int
    host_bandwidth_bytes_per_s: float = 0.0  # 0: not declared, transfers not priced


def align_up(nbytes: int | float, alignment: int) -> int:
    """``nbytes`` rounded up to a multiple of ``alignment`` (a fractional size, int4 data,
    rounds up too)."""
    if isinstance(nbytes, float):
        return math.ceil(nbytes / alignment) * alignment
    return -(-nbytes // alignment) * alignment


@dataclass(frozen=True, eq=False)
class QuantRules:
    """How the chip wants numbers: which precisions it computes in and how to quantize."""

    dtypes: tuple[str, ...]
    preferred: str
    weights: str                 # "per-channel" or "per-tensor"
    weights_symmetric: bool
    weights_narrow_range: bool   # int8 weights in [-127, 127] rather than [-128, 127]
    activations: str             # "symmetric" or "asymmetric"
    calibration: tuple[str, ...]  # precisions that need calibration data

    def needs_calibration(self, precision: str) -> bool:
        """True when compiling at ``precision`` needs calibration data."""
        return precision in self.calibration


@dataclass(frozen=True, eq=False)
class Limit:
    """One limit on an operator: a generic ``check`` with its parameters, and the sentence
    shown to the user when a node breaks it. ``line`` is where it is written."""

    op: str
    check: str
    params: Mapping[str, Any]
    message: str
    line: int = 0


@dataclass(frozen=True, eq=False)
class OpRule:
    """An operator the chip runs, with its limits.

    A fused operator (``npuc::FusedConv``) names its ``base`` operator, whose limits it
    inherits, and ``epilogue_attr``, the attribute listing the ops fused after it; those
    must be allowed by the target's ``[fusion]`` table for the base.
    """

    op: str
    limits: tuple[Limit, ...] = ()
    base: str | None = None
    epilogue_attr: str | None = None


@dataclass(frozen=True, eq=False)
class Fusion:
    """What the chip runs as one kernel.

    ``epilogues`` maps an anchor op (Conv, Gemm, MatMul, ...) to the ops that may follow it
    inside the same kernel; ``elementwise_chains`` says whether runs of elementwise ops
    fuse into one kernel.
    """

    epilogues: Mapping[str, tuple[str, ...]]
    elementwise_chains: bool
    max_epilogues: int


@dataclass(frozen=True, eq=False)
class Layout:
    """The data layout the chip prefers."""

    preferred: str
    channel_alignment: int
    conversion_last_axis_multiple: int


@dataclass(frozen=True, eq=False)
class Link:
    """The chip-to-chip link: bandwidth one way, latency of a small message, topology.

    ``topology`` ``"ring"`` means each chip sends to the next directly (peer-to-peer);
    ``"host"`` means through host memory, so every transfer crosses the link twice.
    """

    kind: str
    bandwidth_bytes_per_s: float
    latency_s: float
    topology: str = "ring"

    def seconds(self, nbytes: float, hops: int = 1) -> float:
        """Seconds to send ``nbytes`` to a neighbour, ``hops`` times in a row."""
        if nbytes <= 0 or hops <= 0:
            return 0.0
        crossings = 2 if self.topology == "host" else 1
        return hops * crossings * (self.latency_s + nbytes / self.bandwidth_bytes_per_s)


@dataclass(frozen=True, eq=False)
class Target:
    """A chip, as read from its TOML file."""

    name: str
    description: str
    kind: str                     # "npu" or "cpu"
    source: str                   # the file it was read from ("<python>" when built in code)
    compute: ComputeUnit
    memory: Memory
    quant: QuantRules
    operators: Mapping[str, OpRule]
    all_operators: bool           # True when the file says supported = ["*"]
    fusion: Fusion
    layout: Layout
    link: Link | None = None
    board_watts: float | None = None
    estimated: tuple[str, ...] = ()
    assumptions: Mapping[str, str] = field(default_factory=frozen_map)
    schema_version: int = 1
    # a vendor package's lowering hooks, by op (see with_lowering); none from a chip file
    lowering: Mapping[str, Callable] = field(default_factory=frozen_map)

    def rule(self, op: str) -> OpRule | None:
        """The rule for a qualified op type (``Conv``, ``npuc::Gelu``), or None."""
        found = self.operators.get(op)
        if found is None and self.all_operators:
            return OpRule(op)
        return found

    def peak_ops(self, precision: str) -> float | None:
        """Peak operations per second at ``precision``, or None when the chip lacks it."""
        return self.compute.peak_ops_per_s.get(precision)

    def is_estimated(self, path: str) -> bool:
        """True when the value at dotted ``path`` (or a table holding it) is an estimate."""
        return any(path == e or path.startswith(e + ".") for e in self.estimated)

    def assumption(self, path: str) -> str | None:
        """The stated assumption behind the estimate at ``path`` (or its nearest table)."""
        parts = path.split(".")
        while parts:
            text = self.assumptions.get(".".join(parts))
            if text is not None:
                return text
            parts.pop()
        return None

    def with_lowering(self, hooks: Mapping[str, Callable]) -> "Target":
        """This target with lowering hooks added: ``{op: hook}``, ``op`` named as in the
        chip file (``Relu``, ``npuc::FusedConv``).

        ``hook(node, command) -> list[dict]`` receives each ``compute`` command lowering
        made for a node of that op (one per tile) and returns the commands that replace it.
        """
        for op, hook in hooks.items():
            if not callable(hook):
                raise TypeError(f"the lowering hook for {op} is a {type(hook).__name__}, "
                                "not a function")
        return replace(self, lowering=frozen_map({**self.lowering, **hooks}))

    def __repr__(self) -> str:
        return f"<Target {self.name} from {self.source}>"

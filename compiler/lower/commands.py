"""The commands of a program, as typed objects, and their JSON form.

Lowering builds these; :func:`to_json` turns a command list into the program format's
dicts (see :mod:`npuc.compiler.lower` for what each command means). Optional fields that
are unset are left out of the JSON, so a program's bytes do not change with the types.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BufferRef:
    """A run of a tensor in one memory: ``space`` (sram, dram, weights) at byte ``offset``
    holding ``shape``; ``slice`` ``(axis, lo, hi)`` of that shape, when only a run is
    meant; ``layout`` and ``stored`` for a weight kept in another layout or format;
    ``scale``: the values are ``stored`` (fp8) times it."""

    tensor: str
    space: str
    offset: int
    shape: tuple
    slice: tuple | None = None
    layout: str | None = None
    stored: str | None = None
    scale: float | None = None  # stored as fp8 of value / scale (a KV cache at fp8)

    def to_json(self) -> dict:
        out = {"tensor": self.tensor, "space": self.space, "offset": self.offset,
               "shape": list(self.shape),
               "slice": None if self.slice is None else list(self.slice)}
        if self.layout:
            out["layout"] = self.layout
        if self.stored:
            out["stored"] = self.stored
        if self.scale is not None:
            out["scale"] = self.scale
        return out


def _ref(r: BufferRef | None):
    return None if r is None else r.to_json()


@dataclass(frozen=True)
class DmaLoad:
    """Copy ``src`` (DRAM or the weights) into the SRAM buffer ``dst``."""

    group: str
    src: BufferRef
    dst: BufferRef
    op = "dma_load"

    def to_json(self) -> dict:
        return {"op": self.op, "group": self.group, "src": self.src.to_json(),
                "dst": self.dst.to_json()}


@dataclass(frozen=True)
class DmaStore(DmaLoad):
    """Copy the SRAM buffer ``src`` to ``dst`` in DRAM."""

    op = "dma_store"


@dataclass(frozen=True)
class Sync:
    """Wait for the ``wait`` engine (``dma`` or ``compute``) to finish what it started."""

    group: str
    wait: str
    op = "sync"

    def to_json(self) -> dict:
        return {"op": self.op, "group": self.group, "wait": self.wait}


@dataclass(frozen=True)
class Compute:
    """Run node ``node`` on ``engine`` (mac, vector, dma) over one tile (``tile``:
    ``(axis, lo, hi)`` of its first output, None for the whole); ``attrs``: per-tile
    attributes, already in their JSON form."""

    group: str
    node: str
    engine: str
    tile: tuple | None
    inputs: tuple
    outputs: tuple
    attrs: dict | None = None
    op = "compute"

    def to_json(self) -> dict:
        out = {"op": self.op, "group": self.group, "node": self.node, "engine": self.engine,
               "tile": None if self.tile is None else list(self.tile),
               "inputs": [_ref(r) for r in self.inputs],
               "outputs": [_ref(r) for r in self.outputs]}
        if self.attrs:
            out["attrs"] = dict(self.attrs)
        return out


@dataclass(frozen=True)
class Cpu:
    """Run node ``node`` on the host over DRAM; ``captures``: what its subgraphs read from
    the graph around them, by name."""

    group: str
    node: str
    inputs: tuple
    outputs: tuple
    captures: dict = field(default_factory=dict)
    op = "cpu"

    def to_json(self) -> dict:
        out = {"op": self.op, "group": self.group, "node": self.node,
               "inputs": [_ref(r) for r in self.inputs],
               "outputs": [_ref(r) for r in self.outputs]}
        if self.captures:
            out["captures"] = {k: r.to_json() for k, r in sorted(self.captures.items())}
        return out


@dataclass(frozen=True)
class KvWrite:
    """The DMA engine writes the rows of ``src`` into the cache ``dst`` along ``axis`` at
    the positions the tensor ``position`` holds, from the batch row ``row`` holds on
    (both read when the command runs)."""

    group: str
    node: str
    axis: int
    src: BufferRef
    position: BufferRef
    dst: BufferRef
    row: BufferRef | None = None  # the first batch row written (else row 0)
    op = "kv_write"

    def to_json(self) -> dict:
        out = {"op": self.op, "group": self.group, "node": self.node, "engine": "dma",
               "axis": self.axis, "src": self.src.to_json(),
               "position": self.position.to_json(), "dst": self.dst.to_json()}
        if self.row is not None:
            out["row"] = self.row.to_json()
        return out


Command = DmaLoad | DmaStore | Sync | Compute | Cpu | KvWrite


def to_json(commands) -> list[dict]:
    """The program format's form of ``commands``."""
    return [c.to_json() for c in commands]

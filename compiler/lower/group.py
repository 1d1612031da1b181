"""The commands of one NPU group, tile by tile: load, wait, compute, wait, store.

Buffers are named by the memory plan: ``GROUP/w/NAME`` a weight in SRAM, ``GROUP/in/NAME``
a streamed input, ``GROUP/t/NAME`` a value made and used inside the group,
``GROUP/out/NAME`` an output on its way to DRAM, ``res/NAME`` a value kept in SRAM between
groups. A tiled group's streamed buffers have two slots, used by alternate tiles.
"""

from __future__ import annotations

from ..schedule.slices import Need, base_op, shape_of
from ..schedule.tiling import part_shape, walk
from .commands import BufferRef, Compute, DmaLoad, DmaStore, Sync
from .encode import encode_value

MAC_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Attention", "GatedMLP"}


class _Tile:
    """One tile of a group: what it loaded, what it made, where its buffers' slots are."""

    def __init__(self, group, k: int, lo: int, hi: int, members, refs, values, resident):
        self.g, self.k, self.refs, self.values, self.resident = group, k, refs, values, resident
        self.double = group.tile.count > 1
        self.walk = walk(members, group.tile.axis, lo, hi)
        self.loaded: dict[str, Need] = {}
        self.made: dict[str, Need] = {}
        self.stores: list = []

    def slot(self, buffer_name: str) -> int:
        a = self.refs.alloc[buffer_name]
        return (self.k % 2) * (a.size // 2) if self.double else 0

    def buffer(self, v, kind: str, shape, need=None, base=0, slotted=True) -> BufferRef:
        name = f"{self.g.name}/{kind}/{v.name}"
        return self.refs.ref(v, "sram", name, shape, need, base,
                             slot=self.slot(name) if slotted else 0)

    # -- the steps -------------------------------------------------------------------

    def loads(self) -> list:
        """``dma_load`` of the tile's weight runs and streamed inputs (whole weights once,
        with the first tile), then the wait for them."""
        out, g, refs = [], self.g.name, self.refs
        for name, need in sorted(self.walk.reads.items()):
            v = self.values[name]
            if name in self.walk.gathered:
                continue  # the DMA engine reads its rows when the gather runs
            if v.const is not None and need.axis is not None:  # a slice per tile
                self.loaded[name] = need
                out.append(DmaLoad(g, refs.dram(v, need),
                                   self.buffer(v, "w", part_shape(v, need))))
            elif v.const is not None:
                if self.k == 0:
                    src = refs.dram(v)
                    out.append(DmaLoad(g, src, self.buffer(v, "w", src.shape, slotted=False)))
            elif name not in self.resident:
                self.loaded[name] = need
                out.append(DmaLoad(g, refs.dram(v, need),
                                   self.buffer(v, "in", part_shape(v, need))))
        out.append(Sync(g, "dma"))
        return out

    def operand(self, v, need: Need) -> BufferRef | None:
        """Where a compute step reads input ``v`` (the run ``need`` of it)."""
        refs = self.refs
        if v is None:
            return None
        if v.name in self.walk.gathered:
            return refs.dram(v)
        if v.const is not None and v.name in self.loaded:
            return self.buffer(v, "w", part_shape(v, self.loaded[v.name]))
        if v.const is not None:
            return self.buffer(v, "w", refs.dram(v).shape, need, slotted=False)
        if v.name in self.resident:
            return refs.ref(v, "sram", f"res/{v.name}", shape_of(v), need)
        if v.name in self.made:
            have = self.made[v.name]
            sub = need.axis is not None and have.axis is not None and \
                (need.lo, need.hi) != (have.lo, have.hi)
            return self.buffer(v, "t", part_shape(v, have), need if sub else None,
                               base=have.lo, slotted=False)
        have = self.loaded[v.name]
        same = need.axis is None or (have.axis == need.axis and
                                     (need.lo, need.hi) == (have.lo, have.hi))
        return self.buffer(v, "in", part_shape(v, have), None if same else need,
                           base=have.lo)

    def result(self, o, part: Need) -> BufferRef | None:
        """Where a compute step writes output ``o`` (its run ``part``)."""
        if o is None:
            return None
        if o.name in self.walk.internal:
            self.made[o.name] = part
            return self.buffer(o, "t", part_shape(o, part), slotted=False)
        if o.name in self.resident:
            return self.refs.ref(o, "sram", f"res/{o.name}", shape_of(o), part)
        r = self.buffer(o, "out", part_shape(o, part))
        self.stores.append((o, part))
        return r

    def compute(self, step) -> Compute:
        """The ``compute`` command of one node over the tile."""
        node = step.node
        inputs = tuple(self.operand(v, need) for v, need in zip(node.inputs, step.rule.needs))
        outputs = tuple(self.result(o, step.out if i == 0 else Need.whole())
                        for i, o in enumerate(node.outputs))
        gathered = any(v is not None and v.name in self.walk.gathered for v in node.inputs)
        engine = "mac" if base_op(node) in MAC_OPS else "dma" if gathered else "vector"
        tile = None if step.out.axis is None else (step.out.axis, step.out.lo, step.out.hi)
        attrs = {k: encode_value(v) for k, v in sorted(step.rule.attrs.items())} \
            if step.rule.attrs else None
        return Compute(self.g.name, node.name, engine, tile, inputs, outputs, attrs)

    def store(self) -> list:
        """The wait for the computes and the ``dma_store`` of the tile's outputs."""
        if not self.stores:
            return []
        out = [Sync(self.g.name, "compute")]
        for o, part in self.stores:
            out.append(DmaStore(self.g.name, self.buffer(o, "out", part_shape(o, part)),
                                self.refs.dram(o, part)))
        return out


def lower_group(group, members, values, resident, refs) -> list:
    """The commands of one NPU group, tile by tile."""
    out: list = []
    for k, (lo, hi) in enumerate(group.tile.ranges()):
        tile = _Tile(group, k, lo, hi, members, refs, values, resident)
        out += tile.loads()
        out += [tile.compute(step) for step in tile.walk.steps]
        out += tile.store()
    return out

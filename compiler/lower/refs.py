"""Buffer references: where a tensor (or a run of it) lies in the chip's memories.

:class:`Refs` knows the memory plan's allocations and the weights' stored layouts, and
collects the type of every tensor it names, for the program's ``tensors`` table.
"""

from __future__ import annotations

from ..schedule.slices import Need, shape_of
from .commands import BufferRef
from .encode import encode_type
from .weights import stored_shape


class Refs:
    """Buffer references into one program's memories; ``tensors``: the types of the
    tensors named so far, encoded."""

    def __init__(self, alloc: dict, layouts: dict[str, str]):
        self.alloc = alloc
        self.layouts = layouts
        self.tensors: dict[str, dict] = {}

    def note(self, v) -> None:
        """Record ``v``'s type in the tensors table."""
        if v.name not in self.tensors:
            self.tensors[v.name] = encode_type(v.type)

    def ref(self, v, space: str, buffer_name: str, shape, need: Need | None = None,
            base: int = 0, slot: int = 0) -> BufferRef:
        """``v`` in buffer ``buffer_name`` (at ``slot`` bytes into it), holding ``shape``;
        ``need``: the run of that shape meant (its bounds relative to ``base``)."""
        self.note(v)
        a = self.alloc[buffer_name]
        run = None
        if need is not None and need.axis is not None:
            run = (need.axis, need.lo - base, need.hi - base)
        layout = None
        if space == "weights" or buffer_name.split("/")[1:2] == ["w"]:
            layout = self.layouts.get(v.name) or None
        stored = v.meta.get("stored") or None  # a weight, or a KV cache, kept narrower
        return BufferRef(v.name, space, a.offset + slot, tuple(shape), run, layout, stored,
                         v.meta.get("stored_scale"))

    def dram(self, v, need: Need | None = None) -> BufferRef:
        """``v`` where it lives off chip: the weights for a constant, else DRAM."""
        if v.const is not None:
            return self.ref(v, "weights", v.name, stored_shape(v.const.shape, self.layouts.get(v.name)), need)
        return self.ref(v, "dram", v.name, shape_of(v), need)

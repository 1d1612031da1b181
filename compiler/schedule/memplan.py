"""Memory planning: an offset for every buffer, reusing space between buffers whose
lifetimes do not overlap.

Lifetimes are intervals of group indices in the schedule (``[first, last]``). Buffers are
placed largest first; each goes into the smallest free gap among the buffers already
placed that are live at the same time (best fit), or above them all when no gap is large
enough. Offsets are rounded up to the target's DMA alignment. The peak is the highest end
of any buffer; :func:`plan` refuses a plan above the capacity it is given.
"""

from __future__ import annotations

from npuc.targets.model import align_up

from .model import Allocation


def best_fit(items, alignment: int, placed: list[Allocation] | None = None,
             capacity: int | None = None, space: str = "sram") -> list[Allocation] | None:
    """Place ``items`` (``(name, size, first, last)``) among ``placed``; None when a buffer
    would end above ``capacity``. The order of ``items`` is kept (callers sort)."""
    placed = list(placed or [])
    for name, size, first, last in items:
        size = align_up(max(size, 1), alignment)
        busy = sorted((a.offset, a.offset + a.size) for a in placed
                      if a.first <= last and first <= a.last)
        best, cursor = None, 0
        for start, end in busy:
            gap = start - cursor
            if gap >= size and (best is None or gap < best[1]):
                best = (cursor, gap)
            cursor = max(cursor, align_up(end, alignment))
        offset = best[0] if best is not None else cursor
        if capacity is not None and offset + size > capacity:
            return None
        placed.append(Allocation(name, space, offset, size, first, last))
    return placed


def plan(items, alignment: int, capacity: int | None = None, space: str = "sram"):
    """Best-fit placement of ``items``, largest first (ties by start, then name)."""
    ordered = sorted(items, key=lambda it: (-it[1], it[2], it[0]))
    return best_fit(ordered, alignment, None, capacity, space)


def check(allocations: list[Allocation]) -> str | None:
    """A sentence naming two buffers that overlap in space and time, or None."""
    by_space: dict[str, list[Allocation]] = {}
    for a in allocations:
        by_space.setdefault(a.space, []).append(a)
    for items in by_space.values():
        items = sorted(items, key=lambda a: a.offset)
        for i, a in enumerate(items):
            for b in items[i + 1:]:
                if b.offset >= a.offset + a.size:
                    break
                if a.overlaps_in_time(b):
                    return (f"{a.space} buffers {a.name} and {b.name} overlap at offset "
                            f"{b.offset} while both are live")
    return None

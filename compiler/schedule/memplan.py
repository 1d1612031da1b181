"""Memory planning: an offset for every buffer, reusing space between buffers whose
lifetimes do not overlap.

Lifetimes are intervals of group indices in the schedule (``[first, last]``). Buffers are
placed largest first; each goes into the smallest free gap among the buffers already
placed that are live at the same time (best fit), or above them all when no gap is large
enough. Offsets are rounded up to the target's DMA alignment. The peak is the highest end
of any buffer; :func:`plan` refuses a plan above the capacity it is given.
"""

from __future__ import annotations

import numpy as np

from npuc.targets.model import align_up

from .model import Allocation


def best_fit(items, alignment: int, placed: list[Allocation] | None = None,
             capacity: int | None = None, space: str = "sram") -> list[Allocation] | None:
    """Place ``items`` (``(name, size, first, last)``) among ``placed``; None when a buffer
    would end above ``capacity``. The order of ``items`` is kept (callers sort)."""
    placer = Placer(alignment, placed or [], space)
    for name, size, first, last in items:
        if placer.place(name, size, first, last, capacity) is None:
            return None
    return placer.allocations


class Placer:
    """Buffers placed so far, best fit: :meth:`place` puts the next one into the smallest
    gap among those live at the same time (the lowest such gap on a tie), or above them
    all. The placed buffers' lifetimes and extents are kept as arrays, so that finding
    those live at the same time is one comparison over all of them, not a Python loop
    (a model's thousands of tile buffers made the plan quadratic in Python)."""

    def __init__(self, alignment: int, placed=(), space: str = "sram"):
        self.alignment, self.space = alignment, space
        self.allocations: list[Allocation] = list(placed)
        k = len(self.allocations)
        self._cols = np.zeros((4, max(2 * k, 64)), np.int64)  # first, last, offset, end
        if k:
            self._cols[:, :k] = np.array([(a.first, a.last, a.offset,
                                           align_up(a.offset + a.size, alignment))
                                          for a in self.allocations], np.int64).T

    def place(self, name: str, size, first: int, last: int,
              capacity: int | None = None) -> Allocation | None:
        """Place a buffer of ``size`` bytes live over ``[first, last]``; None (and nothing
        placed) when it would end above ``capacity``."""
        size = align_up(max(size, 1), self.alignment)
        offset = self._offset(size, first, last)
        if capacity is not None and offset + size > capacity:
            return None
        a = Allocation(name, self.space, offset, size, first, last)
        k = len(self.allocations)
        if k == self._cols.shape[1]:
            self._cols = np.concatenate([self._cols, np.zeros_like(self._cols)], axis=1)
        self._cols[:, k] = (first, last, offset, align_up(offset + size, self.alignment))
        self.allocations.append(a)
        return a

    def _offset(self, size: int, first: int, last: int) -> int:
        k = len(self.allocations)
        firsts, lasts, starts, ends = self._cols[:, :k]
        live = np.flatnonzero((firsts <= last) & (lasts >= first))
        if not live.size:
            return 0
        # the live buffers by start (then end); the cursor before each is the highest
        # aligned end of those before it, so the gap before it is its start minus that
        order = live[np.lexsort((ends[live], starts[live]))]
        s, e = starts[order], ends[order]
        top = np.maximum.accumulate(e)
        cursor = np.concatenate(([0], top[:-1]))
        gaps = s - cursor
        fits = np.flatnonzero(gaps >= size)
        if not fits.size:
            return int(top[-1])
        return int(cursor[fits[np.argmin(gaps[fits])]])


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

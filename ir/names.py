"""The names of a graph's values: one table for a graph and all its subgraphs, since a
subgraph may read any value of the graphs around it by name.

A fresh name is the hint itself when free, else the hint's base with the next free
``.N`` (``conv.3`` for the hint ``conv`` or ``conv.1``).
"""

from __future__ import annotations

import itertools
import re

from .errors import VerifyError

_NAME_TAIL = re.compile(r"^(.*?)(?:\.(\d+))?$")


class Names:
    """The value names taken, and a counter per base name for fresh ones."""

    def __init__(self):
        self._taken: set[str] = set()
        self._counters: dict[str, itertools.count] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._taken

    def fresh(self, hint: str = "t") -> str:
        """A name not taken yet, now taken: ``hint`` when free."""
        if hint not in self._taken:
            self._taken.add(hint)
            return hint
        base = _NAME_TAIL.match(hint).group(1) or "t"
        counter = self._counters.setdefault(base, itertools.count(1))
        while True:
            name = f"{base}.{next(counter)}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def claim(self, name: str) -> None:
        """Take ``name``; a name taken already is a value defined twice."""
        if name in self._taken:
            raise VerifyError(f"value name '%{name}' is defined twice")
        self._taken.add(name)

    def release(self, name: str) -> None:
        """Free ``name`` for a later value."""
        self._taken.discard(name)

    def move(self, old: str, new: str) -> bool:
        """Take ``new`` in place of ``old``, unless ``new`` is taken; whether it moved."""
        if new in self._taken:
            return False
        self._taken.discard(old)
        self._taken.add(new)
        return True

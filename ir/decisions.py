"""The decision log: every choice a user may ask about, with its reason in words.

Passes, placement, quantization, tiling and lowering record here what they decided and
why: a fusion applied or refused, a node sent to the CPU, a tile size, quantization
parameters. ``npuc explain`` and the report read the log; nothing else does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Decision:
    """One decision: who made it (``stage``), about what (``subject``), what and why."""

    stage: str  # e.g. "fuse-conv-bn", "placement", "tiling", "quantize"
    subject: str  # the node's or value's name
    action: str  # short verb phrase: "fused", "not fused", "cpu", "tile 1x64x28x28"
    reason: str  # a sentence for the user
    data: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"[{self.stage}] {self.subject}: {self.action} - {self.reason}"


class DecisionLog:
    """An append-only list of decisions, queryable by subject or stage."""

    def __init__(self):
        self.entries: list[Decision] = []
        self._subjects: dict[str, list[Decision]] = {}
        self._indexed: tuple = ()

    def record(self, stage: str, subject: str, action: str, reason: str, **data) -> Decision:
        d = Decision(stage, subject, action, reason, data)
        fresh = self._indexed == self._state()
        self.entries.append(d)
        if fresh:  # keep the index current without walking the log again
            self._subjects.setdefault(subject, []).append(d)
            self._indexed = self._state()
        return d

    def about(self, subject: str) -> list[Decision]:
        """The decisions about ``subject``, in order (an index by subject, so that a
        compile asking about each of its nodes is not quadratic in the log's length)."""
        if self._indexed != self._state():  # entries was changed in place: index again
            self._subjects = {}
            for d in self.entries:
                self._subjects.setdefault(d.subject, []).append(d)
            self._indexed = self._state()
        return list(self._subjects.get(subject, ()))

    def _state(self) -> tuple:
        """What tells whether ``entries`` changed since it was indexed (it is a public
        list: passes prepend, extend or replace it)."""
        e = self.entries
        return (id(e), len(e), id(e[0]) if e else None, id(e[-1]) if e else None)

    def by_stage(self, stage: str) -> list[Decision]:
        return [d for d in self.entries if d.stage == stage]

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_json(self) -> list[dict]:
        return [asdict(d) for d in self.entries]

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True, default=str)


def log_of(graph) -> DecisionLog:
    """The decision log attached to a graph (created on first use)."""
    log = graph.meta.get("decisions")
    if log is None:
        log = graph.meta["decisions"] = DecisionLog()
    return log

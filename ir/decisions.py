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

    def record(self, stage: str, subject: str, action: str, reason: str, **data) -> Decision:
        d = Decision(stage, subject, action, reason, data)
        self.entries.append(d)
        return d

    def about(self, subject: str) -> list[Decision]:
        return [d for d in self.entries if d.subject == subject]

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

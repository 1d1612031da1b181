"""Capacity and energy: the cards that serve a load, and joules per inference or token.

- **cards**: a load of ``qps`` requests per second needs ``ceil(qps / per-card rate)``
  cards, where the per-card rate is the throughput at the best operating point that meets
  the latency target (requests per second: samples for a vision model, requests of the
  workload for a decoder, i.e. output tokens/s over output tokens per request). A decoder
  that needs several chips for one replica counts whole replicas.
- **energy**: the board's power (``[power] board_watts`` in the chip file; estimates are
  marked there) times the time per item at full load: ``watts * chips / rate``. A chip
  without a declared power has no energy figure.
"""

from __future__ import annotations

import math


def cards(qps: float, rate_per_replica: float, chips_per_replica: int = 1) -> int | None:
    """Cards that serve ``qps`` with replicas of ``chips_per_replica`` cards each serving
    ``rate_per_replica`` requests/s; None when a replica serves nothing."""
    if rate_per_replica <= 0:
        return None
    return math.ceil(qps / rate_per_replica - 1e-9) * chips_per_replica


def energy_joules(target, chips: int, rate: float) -> float | None:
    """Joules per item (inference or token) on ``chips`` boards producing ``rate`` items/s."""
    if target.board_watts is None or rate <= 0:
        return None
    return target.board_watts * chips / rate


def power_note(target) -> str:
    """Where the board power comes from: the chip file's figure, marked when estimated."""
    if target.board_watts is None:
        return f"{target.name} declares no board power"
    mark = " (estimate)" if target.is_estimated("power.board_watts") else ""
    return f"{target.board_watts:g} W{mark}"

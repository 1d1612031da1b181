"""Collectives between chips, priced from the chip file's ``[link]``.

- **all-reduce** over ``n`` chips, as a ring: ``2 (n - 1)`` steps, each sending
  ``bytes / n`` to the next chip while receiving as much from the previous one, so
  ``2 (n - 1) (latency + bytes / n / bandwidth)``. The ring adds the partial sums in a
  fixed order (chip 0's part first, then 1, 2, ...), the order the simulator uses too.
- **send/recv** of ``bytes`` from one chip to the next (pipeline stages): one hop.

A ``host`` topology crosses the link twice per hop (:meth:`Link.seconds`).
"""

from __future__ import annotations

from npuc.ir.errors import NpucError


def _link(target):
    if target.link is None:
        raise NpucError(f"{target.name} declares no chip-to-chip link ([link] in "
                        f"{target.source}): it cannot be used as several chips")
    return target.link


def all_reduce_seconds(target, nbytes: float, chips: int) -> float:
    """Seconds of a ring all-reduce of ``nbytes`` over ``chips`` chips (0 for one chip)."""
    if chips <= 1 or nbytes <= 0:
        return 0.0
    return _link(target).seconds(nbytes / chips, hops=2 * (chips - 1))


def send_seconds(target, nbytes: float) -> float:
    """Seconds to send ``nbytes`` to the next chip."""
    if nbytes <= 0:
        return 0.0
    return _link(target).seconds(nbytes)

"""The schedule file: what the scheduler decided, written as JSON and read back.

An engineer edits it to pin a tile or keep a group on the CPU, then compiles with
``--schedule-in``. Reading it back applies, per group, what the file says about the
group's first node (its anchor)::

    {"format": "npuc-schedule", "version": 1, "target": "warboy-2pe",
     "groups": [{"name": "g000", "nodes": ["/conv1/Conv", "/bn1/BatchNormalization"],
                 "device": "npu", "tile": {"axis": 2, "rows": 8}}, ...]}

``"tile": {"axis": null}`` asks for one tile; ``"device": "cpu"`` keeps the group's
anchor on the host. Everything else in the file (reasons, estimates, the memory plan) is
for reading and is recomputed. Every mistake is one line naming the group and field.
"""

from __future__ import annotations

import json
import os

from npuc.ir.errors import NpucError

FORMAT, VERSION = "npuc-schedule", 1


class ScheduleFileError(NpucError):
    """A schedule file that cannot be used."""


def to_dict(sched) -> dict:
    """The schedule as the file stores it."""
    plan = sched.plan
    return {
        "format": FORMAT, "version": VERSION, "target": sched.target,
        "precision": sched.precision,
        "groups": [{"name": g.name, "device": g.device, "nodes": list(g.nodes),
                    "reason": g.reason,
                    "tile": {"axis": g.tile.axis, "rows": g.tile.rows,
                             "extent": g.tile.extent, "count": g.tile.count,
                             "reason": g.tile.reason},
                    "estimate": {k: g.estimate[k] for k in sorted(g.estimate)}}
                   for g in sched.groups],
        "resident": list(sched.resident),
        "memory": {"alignment": plan.alignment, "sram_capacity": plan.sram_capacity,
                   "sram_peak": plan.peak("sram"), "dram_peak": plan.peak("dram"),
                   "weights": plan.peak("weights")} if plan else None,
    }


def dumps(sched) -> str:
    from npuc.compiler.jsontext import dumps as json_text

    return json_text(to_dict(sched)) + "\n"


def read_pins(path: str, target_name: str) -> dict:
    """``{anchor node: pin}`` from a schedule file, checked field by field."""
    where = os.path.basename(path)
    if not os.path.isfile(path):
        raise ScheduleFileError(f"{path}: no such schedule file")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ScheduleFileError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ScheduleFileError(f"{where}: not an npuc schedule file (format must be "
                                f"\"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise ScheduleFileError(f"{where}: schedule file version {data.get('version')!r} is "
                                f"not supported (this npuc reads version {VERSION})")
    if data.get("target") != target_name:
        raise ScheduleFileError(f"{where}: the schedule was made for target "
                                f"{data.get('target')!r}, not {target_name!r}")
    groups = data.get("groups")
    if not isinstance(groups, list):
        raise ScheduleFileError(f"{where}: 'groups' must be a list")
    pins: dict[str, dict] = {}
    for i, g in enumerate(groups):
        label = f"{where}: group {i}"
        if not isinstance(g, dict):
            raise ScheduleFileError(f"{label} must be an object")
        nodes = g.get("nodes")
        if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) for n in nodes):
            raise ScheduleFileError(f"{label}: 'nodes' must be a non-empty list of node names")
        label = f"{where}: group {g.get('name', i)} ({nodes[0]})"
        pin: dict = {}
        device = g.get("device", "npu")
        if device not in ("npu", "cpu"):
            raise ScheduleFileError(f"{label}: 'device' must be \"npu\" or \"cpu\", not "
                                    f"{device!r}")
        if device == "cpu":
            pin["device"] = "cpu"
        tile = g.get("tile")
        if tile is not None and device == "npu":
            if not isinstance(tile, dict):
                raise ScheduleFileError(f"{label}: 'tile' must be an object")
            axis, rows = tile.get("axis"), tile.get("rows", 1)
            if axis is not None and (not isinstance(axis, int) or isinstance(axis, bool)):
                raise ScheduleFileError(f"{label}: tile 'axis' must be an integer or null")
            if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
                raise ScheduleFileError(f"{label}: tile 'rows' must be a positive integer")
            pin.update(axis=axis, rows=rows)
        pins[nodes[0]] = pin
    return pins


def check_pins(pins: dict, graph) -> None:
    """Every pinned anchor must be a node of the graph."""
    names = {n.name for n in graph.nodes}
    for anchor in pins:
        if anchor not in names:
            raise ScheduleFileError(f"schedule file: node {anchor!r} is not in the model (was "
                                    "the schedule made for another model or -O level?)")

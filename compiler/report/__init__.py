"""What a compilation says about itself: ``summary.json`` and ``report.html``.

- :func:`summarize`: the numbers (estimated latency, SRAM peak, DRAM traffic) and the
  per-layer list, as plain data;
- :func:`write_report`: the HTML page: the summary, a per-layer table, the roofline plot
  (inline SVG) and every decision with its reason.
"""

from __future__ import annotations

import os

from .html import write_report

__all__ = ["summarize", "write_report"]


def _model_label(model) -> str:
    """How the summary names the model: never an absolute path (artifacts are portable)."""
    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        return text if text.startswith("zoo:") else os.path.basename(text)
    return getattr(getattr(model, "graph", None), "name", "") or "model"


def summarize(graph, sched, program, target, model, precision: str, estimate_at: str) -> dict:
    """The summary of a compilation (what ``summary.json`` holds)."""
    nodes = {n.name: n for n in graph.nodes}
    layers = []
    for g in sched.groups:
        e = g.estimate
        roof = e.get("roofline", {})
        layers.append({
            "group": g.name, "device": g.device, "nodes": list(g.nodes),
            "ops": [nodes[n].op_type for n in g.nodes],
            "tile": None if g.tile.axis is None else {"axis": g.tile.axis, "rows": g.tile.rows,
                                                      "count": g.tile.count},
            "estimated_s": e.get("seconds", 0.0), "bound": e.get("bound"),
            "macs": e.get("macs", 0), "dram_bytes": e.get("dma_bytes", 0),
            "utilisation": e.get("utilisation", 0.0),
            "roofline_s": max(roof.get("compute_s", 0.0), roof.get("memory_s", 0.0)),
            "ops_count": roof.get("ops", 0.0), "intensity": (roof.get("ops", 0.0) /
                                                             roof["bytes"]) if roof.get("bytes")
            else None,
            "reason": g.reason,
        })
    npu = sum(len(g.nodes) for g in sched.groups if g.device == "npu")
    cpu = sum(len(g.nodes) for g in sched.groups if g.device != "npu")
    peak = target.peak_ops(estimate_at) or 0.0
    return {
        "format": "npuc-summary", "version": 1,
        "model": _model_label(model), "target": target.name,
        "precision": precision, "estimated_at": estimate_at,
        "estimated_latency_s": sched.estimated_seconds,
        "host_transfer_s": sched.host_transfer_s,
        "sram_peak_bytes": sched.plan.peak("sram"), "sram_bytes": target.memory.sram_bytes,
        "dram_arena_bytes": sched.plan.peak("dram"), "weights_bytes": sched.plan.peak("weights"),
        "dram_traffic_bytes": int(sum(g.estimate.get("dma_bytes", 0) for g in sched.groups
                                      if g.device == "npu")),
        "resident_tensors": len(sched.resident),
        "groups": len(sched.groups), "nodes_on_npu": npu, "nodes_on_cpu": cpu,
        "commands": len(program["commands"]), "peak_ops_per_s": peak,
        "dram_bandwidth_bytes_per_s": target.memory.dram_bandwidth_bytes_per_s,
        "layers": layers,
    }

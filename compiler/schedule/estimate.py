"""Prices for groups: the target's cost model, asked the right question.

:func:`group_estimate` turns a tile choice into the cost model's :class:`Tile` (the share
of the anchor's output positions one tile computes) and returns the estimate as a plain
dict, the form the schedule file and the report keep. :func:`discount_resident` removes
the DRAM traffic of tensors that stay in SRAM between groups (cascading), which the cost
model, seeing one group at a time, counts as loads and stores. The group's roofline
moves the same way: its memory term counts only the bytes that still cross DRAM, so
that the roofline stays a lower bound of the estimate it is printed beside.
"""

from __future__ import annotations

import math


def as_dict(e) -> dict:
    """The fields of a :class:`npuc.targets.Estimate` that the report and schedule keep."""
    r = e.roofline
    return {
        "precision": e.precision, "macs": int(e.macs), "vector_elements": int(e.vector_elements),
        "input_bytes": int(e.input_bytes), "weight_bytes": int(e.weight_bytes),
        "output_bytes": int(e.output_bytes), "dma_bytes": int(e.dma_bytes),
        "tiles": int(e.tiles), "utilisation": round(float(e.utilisation), 6),
        "compute_cycles": float(e.compute_cycles), "dma_cycles": float(e.dma_cycles),
        "prologue_cycles": float(e.prologue_cycles), "cycles": float(e.cycles),
        "seconds": float(e.seconds), "bound": e.bound,
        "roofline": {"ops": float(r.ops), "bytes": int(r.bytes), "compute_s": float(r.compute_s),
                     "memory_s": float(r.memory_s), "bound": r.bound},
    }


def group_estimate(cost_nodes, target, fraction: float = 1.0, name: str = "",
                   columns: bool = False) -> dict:
    """The estimate of a group whose tiles each compute ``fraction`` of its output (of its
    rows, or of its columns when ``columns``)."""
    from npuc.targets.cost import Tile, estimate_group
    from npuc.targets.work import gemm_views, vector_elements

    views = [v for n in cost_nodes for v in gemm_views(n)]
    if views:
        a = max(views, key=lambda v: v.macs)
        tile = Tile(a.m, max(1, math.ceil(a.n * fraction)), a.k) if columns else \
            Tile(max(1, math.ceil(a.m * fraction)), a.n, a.k)
    else:
        elements = max(1, sum(vector_elements(n) for n in cost_nodes))
        tile = Tile(max(1, math.ceil(elements * fraction)), 1, 1)
    return as_dict(estimate_group(cost_nodes, target, tile, name=name or None))


def discount_resident(est: dict, resident_bytes: int, clock_hz: float) -> dict:
    """``est`` with ``resident_bytes`` of its boundary traffic kept on chip instead."""
    boundary = est["input_bytes"] + est["weight_bytes"] + est["output_bytes"]
    if not resident_bytes or not boundary:
        return est
    keep = max(0.0, 1.0 - resident_bytes / boundary)
    out = dict(est)
    compute, dma = est["compute_cycles"], est["dma_cycles"] * keep
    if est["tiles"] <= 1:
        prologue = min(compute, dma)
    elif compute >= dma:
        prologue = est["prologue_cycles"] * keep if est["compute_cycles"] >= est["dma_cycles"] \
            else dma / est["tiles"]
    else:
        prologue = est["prologue_cycles"]
    roof = dict(est.get("roofline") or {})
    if roof:
        # the lower bound moves only the bytes that still cross DRAM, at the same bandwidth
        roof["bytes"] = int(boundary * keep)
        roof["memory_s"] = float(roof.get("memory_s", 0.0)) * keep
        roof["bound"] = "compute" if roof.get("compute_s", 0.0) >= roof["memory_s"] \
            else "memory"
        out["roofline"] = roof
    out.update(dma_cycles=dma, dma_bytes=int(est["dma_bytes"] * keep), prologue_cycles=prologue,
               cycles=max(compute, dma) + prologue + est.get("setup_cycles", 0),
               resident_bytes=int(resident_bytes))
    out["seconds"] = out["cycles"] / clock_hz
    out["bound"] = "compute" if compute >= dma else "dma"
    return out

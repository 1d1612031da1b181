"""Vision and encoder models: latency per batch size from compiled programs, and the
offline throughput at the best batch that fits.

Each batch size of the sweep is compiled (``npuc.compile`` at that batch, the summary's
estimated latency is the batch's latency); the batch fits when the weights and the DRAM
arena of activations fit the chip's DRAM. Offline throughput is ``batch / latency`` at the
best batch that fits; on ``chips`` chips each runs its own batches (data parallel), so
throughput scales with the chips and latency does not. Calibration uses one random input
set: the estimate depends on the program's shapes and precisions, not on the ranges.
"""

from __future__ import annotations

DEFAULT_BATCHES = (1, 2, 4, 8)


def cpu_share(summary: dict) -> dict:
    """How much of the estimated time and of the nodes runs on the host CPU, and why."""
    layers = summary["layers"]
    total = sum(layer["estimated_s"] for layer in layers) or 1.0
    cpu = [layer for layer in layers if layer["device"] != "npu"]
    reasons: dict[str, list[str]] = {}
    for layer in cpu:
        reasons.setdefault(layer["reason"] or "", []).extend(layer["ops"])
    nodes = summary["nodes_on_npu"] + summary["nodes_on_cpu"]
    return {"time_fraction": sum(layer["estimated_s"] for layer in cpu) / total,
            "nodes": summary["nodes_on_cpu"],
            "node_fraction": summary["nodes_on_cpu"] / nodes if nodes else 0.0,
            "reasons": [{"reason": r, "ops": sorted(set(ops))}
                        for r, ops in sorted(reasons.items())]}


def sweep(model, target, batches=DEFAULT_BATCHES, quantize: str = "auto",
          calibration="random:1") -> list[dict]:
    """One row per batch size: latency, throughput, memory, whether it fits, the summary."""
    from npuc.compiler.driver import compile

    rows = []
    for batch in sorted(set(batches)):
        result = compile(model, target, quantize=quantize, calibration=calibration,
                         batch=batch)
        s = result.summary
        dram = s["weights_bytes"] + s["dram_arena_bytes"]
        latency = s["estimated_latency_s"]
        rows.append({"batch": batch, "latency_s": latency,
                     "samples_per_s": batch / latency if latency > 0 else 0.0,
                     "dram_bytes": dram, "fits": dram <= result.target.memory.dram_bytes,
                     "precision": result.precision, "estimated_at": s["estimated_at"],
                     "roofline_s": sum(layer["roofline_s"] for layer in s["layers"]),
                     "summary": s})
    return rows


def offline(rows: list[dict], chips: int = 1, latency_target: float | None = None) -> dict:
    """The best batch that fits (and meets ``latency_target``), and its throughput."""
    ok = [r for r in rows if r["fits"] and (latency_target is None or
                                             r["latency_s"] <= latency_target)]
    if not ok:
        return {"fits": False}
    best = max(ok, key=lambda r: (r["samples_per_s"], -r["batch"]))
    return {"fits": True, "batch": best["batch"], "latency_s": best["latency_s"],
            "samples_per_s": best["samples_per_s"] * chips, "chips": chips,
            "single_stream_latency_s": min(rows, key=lambda r: r["batch"])["latency_s"]}

"""A target as plain data, for ``npuc targets --json`` and reports."""

from __future__ import annotations

from .model import Target


def target_summary(target: Target) -> dict:
    """The JSON form of a target: its figures, which of them are estimates, its ops."""
    c, m, q = target.compute, target.memory, target.quant
    return {
        "name": target.name,
        "description": target.description,
        "kind": target.kind,
        "source": target.source,
        "schema_version": target.schema_version,
        "peak_ops_per_s": dict(c.peak_ops_per_s),
        "clock_hz": c.clock_hz,
        "units": c.units,
        "mac_array": list(c.mac_array),
        "vector_elements_per_cycle": c.vector_elements_per_cycle,
        "sram_bytes": m.sram_bytes,
        "sram_banks": m.sram_banks,
        "dram_bytes": m.dram_bytes,
        "dram_bandwidth_bytes_per_s": m.dram_bandwidth_bytes_per_s,
        "dma_alignment_bytes": m.dma_alignment_bytes,
        "quantization": {
            "dtypes": list(q.dtypes), "preferred": q.preferred, "weights": q.weights,
            "weights_symmetric": q.weights_symmetric,
            "weights_narrow_range": q.weights_narrow_range, "activations": q.activations,
            "calibration": list(q.calibration),
        },
        "layout": {"preferred": target.layout.preferred,
                   "channel_alignment": target.layout.channel_alignment},
        "fusion": {"epilogues": {k: list(v) for k, v in target.fusion.epilogues.items()},
                   "elementwise_chains": target.fusion.elementwise_chains},
        "estimated": list(target.estimated),
        "assumptions": dict(target.assumptions),
        "supported_ops": ["*"] if target.all_operators else sorted(target.operators),
        "limits": [{"op": lim.op, "check": lim.check, **dict(lim.params),
                    "message": lim.message}
                   for rule in target.operators.values() if rule.base is None
                   for lim in rule.limits],
    }

"""``estimate(model, target, ...)``: latency, throughput, capacity and energy of a model on
one or several chips, as plain data (what ``npuc estimate`` prints and writes as JSON).

A decoder (a model with a KV cache, see :mod:`.profile`) gets the continuous-batching
serving model of :mod:`.decoder`, priced from its sizes without reading its weights; any
other model gets a batch sweep of compiled programs (:mod:`.vision`).
"""

from __future__ import annotations

from npuc.ir.errors import NpucError

from . import capacity
from .decoder import Precisions, Workload, activation_precision, plan
from .profile import decoder_profile, is_decoder, load_proto
from .vision import DEFAULT_BATCHES, cpu_share, offline, sweep


def _target(target):
    from npuc.targets import get_target
    from npuc.targets.model import Target

    return target if isinstance(target, Target) else get_target(target)


def weight_precision(target, quantize: str) -> str:
    """The precision the weights are priced at: ``auto`` is the chip's preferred one."""
    if quantize in ("auto", "none"):
        return target.quant.preferred
    if quantize not in target.quant.dtypes:
        raise NpucError(f"{target.name} computes in {', '.join(target.quant.dtypes)}; "
                        f"--quantize {quantize} is not possible on it")
    return quantize


def _label(model) -> str:
    import os

    if isinstance(model, (str, os.PathLike)):
        text = os.fspath(model)
        return text if text.startswith("zoo:") else os.path.basename(text)
    return getattr(getattr(model, "graph", None), "name", "") or "model"


def estimate(model, target, chips: int = 1, workload: Workload | None = None,
             batches=None, quantize: str = "auto", tp: int | None = None,
             pp: int | None = None, qps: float | None = None,
             latency_target: float | None = None, max_sequences: int | None = None) -> dict:
    """The estimate of ``model`` on ``chips`` x ``target`` (see the module docstring)."""
    target = _target(target)
    if chips < 1:
        raise NpucError("--chips must be at least 1")
    proto = load_proto(model)
    base = {"format": "npuc-estimate", "version": 1, "model": _label(model),
            "target": target.name, "chips": chips,
            "board_power": capacity.power_note(target), "qps": qps,
            "latency_target_s": latency_target}
    if is_decoder(proto):
        return base | _decoder(model, proto, target, chips, workload or Workload(128, 128),
                               quantize, tp, pp, qps, latency_target, max_sequences)
    if tp not in (None, 1) or pp not in (None, 1):
        raise NpucError("--tp and --pp split decoders; other models run one batch per chip "
                        "(data parallel)")
    return base | _vision(model, target, chips, batches or DEFAULT_BATCHES, quantize, qps,
                          latency_target)


def _decoder(model, proto, target, chips, work, quantize, tp, pp, qps, latency_target,
             max_sequences) -> dict:
    if work.input < 1 or work.output < 1:
        raise NpucError("--workload needs in >= 1 and out >= 1 tokens")
    profile = decoder_profile(proto, _label(model))
    weights = weight_precision(target, quantize)
    prec = Precisions(weights, activation_precision(target, weights))
    best = plan(profile, target, prec, work, chips, tp, pp, latency_target, max_sequences)
    best["curve"] = _curve(profile, target, prec, work, best)
    tokens = best["output_tokens_per_s"]
    requests = tokens / work.output
    replica = best["tp"] * best["pp"]
    out = {"kind": "decoder", "precision": prec.weights, "kv_precision": prec.activations,
           "workload": {"input_tokens": work.input, "output_tokens": work.output},
           "profile": profile.to_json(), "serving": best,
           "output_tokens_per_s": tokens, "requests_per_s": requests,
           "time_to_first_token_s": best["time_to_first_token_s"],
           "time_per_output_token_s": best["time_per_output_token_s"],
           "max_sequences": best["sequences_total"],
           "joules_per_token": capacity.energy_joules(target, chips, tokens),
           "cpu": _decoder_cpu(model, target),
           "peak_ops_per_s": target.peak_ops(prec.weights),
           "dram_bandwidth_bytes_per_s": target.memory.dram_bandwidth_bytes_per_s}
    if qps is not None:
        out["cards_for_load"] = capacity.cards(qps, requests / best["dp"], replica)
    return out


def _curve(profile, target, prec, work, best) -> list[dict]:
    """Time per output token and tokens/s of the chosen plan at 1, 2, 4, ... sequences."""
    from .decoder import serve

    counts, n = [], 1
    while n < best["sequences"]:
        counts.append(n)
        n *= 2
    rows = []
    for n in counts + [best["sequences"]]:
        r = serve(profile, target, prec, work, best["tp"], best["pp"], n)
        rows.append({"sequences": n * best["dp"],
                     "time_per_output_token_s": r["time_per_output_token_s"],
                     "output_tokens_per_s": r["output_tokens_per_s"] * best["dp"]})
    return rows


def _decoder_cpu(model, target) -> dict:
    """Which nodes of the graph as imported would run on the host, and why."""
    from npuc.compiler.frontend.load import load_model
    from npuc.targets import place

    graph = load_model(model)
    placed = place(graph, target)
    reasons: dict[str, set] = {}
    for node, p in placed.items():
        if not p.on_npu:
            reasons.setdefault(p.reason, set()).add(node.op_type)
    cpu = sum(1 for p in placed.values() if not p.on_npu)
    return {"nodes": cpu, "node_fraction": cpu / max(1, len(placed)), "time_fraction": None,
            "reasons": [{"reason": r, "ops": sorted(o)} for r, o in sorted(reasons.items())],
            "note": "placement of the graph as imported, before fusion; the serving model "
                    "prices all of it on the chip"}


def _vision(model, target, chips, batches, quantize, qps, latency_target) -> dict:
    rows = sweep(model, target, batches, quantize)
    best = offline(rows, chips, latency_target)
    first = rows[0]
    out = {"kind": "batch", "precision": first["precision"],
           "batches": [{k: v for k, v in r.items() if k != "summary"} for r in rows],
           "offline": best, "cpu": cpu_share(first["summary"]),
           "single_stream_latency_s": first["latency_s"]}
    if best["fits"]:
        out["samples_per_s"] = best["samples_per_s"]
        out["joules_per_inference"] = capacity.energy_joules(target, chips,
                                                             best["samples_per_s"])
        if qps is not None:
            out["cards_for_load"] = capacity.cards(qps, best["samples_per_s"] / chips)
    out["roofline_summary"] = first["summary"]
    return out

"""Serving a decoder with continuous batching, on one chip or several.

The workload is ``input`` prompt tokens and ``output`` generated tokens per request. A
serving system with continuous batching (vLLM, furiosa-llm, ...) keeps ``B`` sequences in
flight and, each *round*, gives every one of them its next token; a sequence that ends is
replaced at once by a new request, whose prompt is processed (prefilled) in the same
round. In the steady state ``B / output`` requests start each round, so a round carries
``B`` decode tokens and ``B * input / output`` prompt tokens, and the sequences in flight
hold on average ``input + output / 2`` positions of KV cache (paged: each sequence holds
what it has written, not its maximum).

**Memory** (per chip): the weights at the compiled precision, split over the chips; the
KV cache at the activation precision, split over tensor-parallel chips by key/value head
(a head is not split, so past ``kv_heads`` chips it is replicated) and over pipeline
stages by layer. ``RESERVE`` of the DRAM is left for activations and the runtime, as
vLLM's default ``gpu_memory_utilization`` of 0.9 does. ``B`` is the most sequences whose
KV cache fits the rest.

**Time of a round** (per stage of ``layers / pp`` layers on ``tp`` chips) at its
roofline: ``max(FLOPs / peak, bytes / DRAM bandwidth)`` with FLOPs of the weight products
(2 per parameter per token) at the weights' precision and of attention (2 per MAC per
query and context position, prompts causal) at the activation precision; bytes of the
weights (once per round), the KV cache read, and the KV cache written. Tensor parallelism
adds two all-reduces per layer of the round's tokens x ``hidden`` activations, which the
next layer waits for (not overlapped). Pipeline parallelism splits the ``B`` sequences
into ``pp`` micro-batches that follow each other through the stages, so a round takes
``pp`` stage times; the activations sent between stages overlap the next micro-batch.

Reported: output tokens/s (``dp * B / round``), time per output token (one round), time
to first token (the prompt alone through every stage, then the round it joins), and the
most sequences in flight (at most ``MAX_SEQUENCES`` unless asked). The choice of
``tp x pp`` (and data-parallel replicas ``dp``) for ``chips`` is the one with the most
tokens/s that meets the latency target.
"""

from __future__ import annotations

from dataclasses import dataclass

from npuc.ir.errors import NpucError
from npuc.targets.precision import bytes_per_element

from .collectives import all_reduce_seconds, send_seconds

RESERVE = 0.10
# The most sequences a runtime keeps in flight unless told otherwise (vLLM's default
# max_num_seqs); --batch N sets another.
MAX_SEQUENCES = 256


@dataclass(frozen=True)
class Workload:
    """Tokens in and out per request."""

    input: int
    output: int


@dataclass(frozen=True)
class Precisions:
    """What the weights and the activations (KV cache, attention, collectives) are in."""

    weights: str
    activations: str


def activation_precision(target, weights: str) -> str:
    """The KV cache's precision: bf16 (or fp16) where the chip computes in it, else the
    weights' precision (an integer-only chip keeps int8 activations)."""
    for p in ("bf16", "fp16"):
        if p in target.quant.dtypes:
            return p
    return weights


def _peak(target, precision: str) -> float:
    peak = target.peak_ops(precision)
    if peak is None:
        raise NpucError(f"{target.name} does not compute in {precision}")
    return peak


def memory_plan(profile, target, prec: Precisions, work: Workload, tp: int, pp: int) -> dict:
    """Bytes per chip and the most sequences whose KV cache fits."""
    weights = profile.parameters * bytes_per_element(prec.weights) / (tp * pp)
    kv_token = profile.kv_elements_per_token * bytes_per_element(prec.activations) / (
        min(tp, profile.kv_heads) * pp)
    budget = target.memory.dram_bytes * (1 - RESERVE) - weights
    mean_context = work.input + work.output / 2
    sequences = int(budget // (kv_token * mean_context)) if budget > 0 else 0
    fits = budget >= kv_token * (work.input + work.output)
    return {"weight_bytes_per_chip": weights, "kv_bytes_per_token_per_chip": kv_token,
            "kv_budget_bytes_per_chip": max(budget, 0.0), "max_sequences": sequences,
            "fits": bool(fits)}


def _stage(profile, target, prec, work, tp, pp, sequences, prompt_tokens, memory) -> dict:
    """Seconds of one stage on ``sequences`` decode tokens and ``prompt_tokens`` more."""
    share = 1.0 / (tp * pp)
    mean_context = work.input + work.output / 2
    tokens = sequences + prompt_tokens
    pairs = sequences * mean_context + prompt_tokens * (work.input + 1) / 2
    compute = (2 * profile.matmul_parameters * share * tokens / _peak(target, prec.weights) +
               2 * profile.attention_macs_per_pair * share * pairs /
               _peak(target, prec.activations))
    kv = memory["kv_bytes_per_token_per_chip"]
    moved = memory["weight_bytes_per_chip"] + (sequences * mean_context + tokens) * kv
    memory_s = moved / target.memory.dram_bandwidth_bytes_per_s
    act = tokens * profile.hidden * bytes_per_element(prec.activations)
    reduce_s = 2 * profile.layers / pp * all_reduce_seconds(target, act, tp)
    send_s = send_seconds(target, act) if pp > 1 else 0.0
    flops = (2 * profile.matmul_parameters * share * tokens +
             2 * profile.attention_macs_per_pair * share * pairs)
    return {"flops": flops, "bytes": moved,
            "compute_s": compute, "memory_s": memory_s, "all_reduce_s": reduce_s,
            "send_s": send_s, "seconds": max(compute, memory_s) + reduce_s,
            "bound": "compute" if compute >= memory_s else "memory"}


def serve(profile, target, prec: Precisions, work: Workload, tp: int = 1, pp: int = 1,
          sequences: int | None = None) -> dict:
    """The serving estimate of one replica on ``tp x pp`` chips with ``sequences`` in
    flight (the most that fit when None)."""
    if pp > profile.layers:
        raise NpucError(f"{pp} pipeline stages for {profile.layers} layers: at most one "
                        "stage per layer")
    memory = memory_plan(profile, target, prec, work, tp, pp)
    if not memory["fits"]:
        return {"tp": tp, "pp": pp, "fits": False, **memory}
    b = max(1, min(sequences or MAX_SEQUENCES, memory["max_sequences"]))
    micro = b / pp
    stage = _stage(profile, target, prec, work, tp, pp, micro, micro * work.input / work.output,
                   memory)
    round_s = pp * max(stage["seconds"], stage["send_s"])
    alone = _stage(profile, target, prec, work, tp, pp, 0, work.input, memory)
    ttft = pp * (alone["seconds"] + alone["send_s"]) + round_s
    return {"tp": tp, "pp": pp, "fits": True, **memory, "sequences": b,
            "round_s": round_s, "stage": stage, "prefill_alone_s": pp * alone["seconds"],
            "output_tokens_per_s": b / round_s, "time_per_output_token_s": round_s,
            "time_to_first_token_s": ttft}


def _plans(chips: int, tp: int | None, pp: int | None):
    for t in range(1, chips + 1):
        for p in range(1, chips // t + 1):
            if chips % (t * p) or (tp and t != tp) or (pp and p != pp):
                continue
            yield t, p, chips // (t * p)


def _meet(profile, target, prec, work, t, p, latency_target):
    """The replica with the most sequences whose time per output token meets the target."""
    best = serve(profile, target, prec, work, t, p)
    if not best["fits"] or latency_target is None or \
            best["time_per_output_token_s"] <= latency_target:
        return best
    lo, hi = 1, best["sequences"]
    found = None
    while lo <= hi:  # time per token grows with the sequences in flight
        mid = (lo + hi) // 2
        r = serve(profile, target, prec, work, t, p, mid)
        if r["time_per_output_token_s"] <= latency_target:
            found, lo = r, mid + 1
        else:
            hi = mid - 1
    return found


def _better(a: dict, b: dict) -> bool:
    """More tokens/s (beyond 0.1%), or as many at a shorter time per token."""
    ta, tb = a["output_tokens_per_s"], b["output_tokens_per_s"]
    if abs(ta - tb) > 1e-3 * max(ta, tb):
        return ta > tb
    return a["time_per_output_token_s"] < b["time_per_output_token_s"]


def plan(profile, target, prec: Precisions, work: Workload, chips: int = 1,
         tp: int | None = None, pp: int | None = None, latency_target: float | None = None,
         max_sequences: int | None = None) -> dict:
    """The best ``dp x tp x pp`` for ``chips`` (or the pinned ``tp``/``pp``): the most
    output tokens/s whose time per output token meets ``latency_target``."""
    if any(x is not None and x < 1 for x in (tp, pp)) or chips % ((tp or 1) * (pp or 1)):
        raise NpucError(f"--tp {tp or 1} x --pp {pp or 1} does not divide {chips} chips")
    tried, best = [], None
    for t, p, dp in _plans(chips, tp, pp):
        if p > profile.layers:
            continue
        if max_sequences:
            r = serve(profile, target, prec, work, t, p, max_sequences)
        else:
            r = _meet(profile, target, prec, work, t, p, latency_target)
        if r is None or not r["fits"]:
            tried.append({"tp": t, "pp": p, "dp": dp, "fits": False})
            continue
        r = dict(r, dp=dp, chips=chips)
        r["output_tokens_per_s"] *= dp
        r["sequences_total"] = r["sequences"] * dp
        tried.append({k: r[k] for k in ("tp", "pp", "dp", "output_tokens_per_s",
                                        "time_per_output_token_s")})
        if best is None or _better(r, best):
            best = r
    if best is None:
        raise NpucError(f"{profile.name} does not fit {chips} x {target.name} at "
                        f"{prec.weights} for {work.input}+{work.output} tokens"
                        + (" within the latency target" if latency_target else ""))
    best["plans"] = tried
    return best

"""``compile_chips``: one model, one program per chip, transfers between them.

The model is loaded, optimized and quantized once, exactly as :func:`npuc.compile` does,
then cut into pipeline stages (:mod:`.partition`); each stage is scheduled and lowered for
its chip. A tensor one stage makes and a later one reads travels as a ``send`` command at
the end of the producer's program and a ``recv`` command at the start of the reader's,
each with its bytes and its time on the chip's link (``[link]`` in the chip file).

The estimated latency of one input through all chips is the sum of the stages and the
transfers; in a stream of inputs each chip works on a different one, so throughput is one
input per slowest stage (with its transfers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from npuc.ir.errors import NpucError


@dataclass
class MultiChipResult:
    """The per-chip programs and weights, their summaries, and the whole's manifest."""

    target: object
    graph: object               # the whole quantized graph the stages were cut from
    programs: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    summaries: list = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    precision: str = "fp32"
    proto: object = None

    parallelism: str = "pipeline"

    def files(self) -> dict:
        """The artifact: ``chips.json``, ``decisions.json`` (every stage's decisions, as
        one chip's compile writes them) and ``chipK-program.json`` / ``-weights.bin`` /
        ``-summary.json`` per chip."""
        import json

        from npuc.ir.decisions import log_of

        def dump(data):
            return json.dumps(data, indent=1, sort_keys=True) + "\n"

        # the stages share the whole graph's log: their decisions are all in it
        out = {"chips.json": dump(self.manifest),
               "decisions.json": log_of(self.graph).dumps() + "\n"}
        for k, (p, w, s) in enumerate(zip(self.programs, self.weights, self.summaries)):
            out[f"chip{k}-program.json"] = dump(p)
            out[f"chip{k}-weights.bin"] = w
            out[f"chip{k}-summary.json"] = dump(s)
        return out


def _transfers(programs: list, target) -> list[dict]:
    """Add ``recv``/``send`` commands; the list of transfers."""
    from npuc.compiler.lower.encode import type_bytes
    from npuc.compiler.serving.collectives import send_seconds

    made = {}
    for k, p in enumerate(programs):
        for name in p["outputs"]:
            made.setdefault(name, k)
    moves = []
    for k, p in enumerate(programs):
        recvs = []
        for name in sorted(p["inputs"]):
            src = made.get(name)
            if src is None or src >= k:
                continue  # a model input
            nbytes = type_bytes(p["tensors"][name])
            seconds = send_seconds(target, nbytes)
            moves.append({"tensor": name, "from": src, "to": k, "bytes": nbytes,
                          "seconds": seconds})
            recvs.append({"op": "recv", "tensor": name, "from": src, "bytes": nbytes,
                          "seconds": seconds})
            programs[src]["commands"].append({"op": "send", "tensor": name, "to": k,
                                              "bytes": nbytes, "seconds": seconds})
        p["commands"][:0] = recvs
    return moves


PARALLEL = ("auto", "pipeline", "tensor")


def compile_chips(model, target, chips: int, opt_level: int = 2, quantize: str = "auto",
                  calibration=None, batch: int = 1, parallel: str = "auto",
                  keep_reference: bool = True) -> MultiChipResult:
    """Compile ``model`` for ``chips`` x ``target``: ``tensor`` parallel (weights split
    by columns, :mod:`.tensor`) or ``pipeline`` stages; ``auto`` splits decoders (graphs
    with ``present*`` KV-cache outputs) by tensor, other models by pipeline.
    ``keep_reference=False``: the ONNX model is not kept (``proto`` None) and its external
    weights are mapped, never read whole: verification needs it, a compile does not."""
    from npuc.compiler.lower import lower
    from npuc.compiler.pipeline import (
        estimate_precision,
        optimize_graph,
        requested_precision,
        target_of,
    )
    from npuc.compiler.quantize_step import quantize_step
    from npuc.compiler.report import summarize
    from npuc.compiler.schedule import schedule
    from npuc.compiler.schedule.prepare import load_static

    from .partition import split

    target = target_of(target)
    if chips > 1 and target.link is None:
        raise NpucError(f"{target.name} declares no chip-to-chip link ([link] in "
                        f"{target.source}): it cannot be used as several chips")
    precision = requested_precision(target, quantize)
    graph, proto = load_static(model, batch, reference=keep_reference)
    if not keep_reference:
        graph.meta.pop("source_proto", None)
        proto = None
    graph = optimize_graph(graph, opt_level)
    graph, computed = quantize_step(graph, target, precision, calibration)
    estimate_at = computed if computed != "fp32" else estimate_precision(target, precision)
    if parallel not in PARALLEL:
        raise NpucError(f"--parallel must be one of {', '.join(PARALLEL)}, not {parallel!r}")
    if parallel == "auto":
        decoder = any(v.name.startswith("present") for v in graph.outputs)
        parallel = "tensor" if decoder and chips > 1 else "pipeline"
    result = MultiChipResult(target, graph, precision=computed, proto=proto)
    if parallel == "tensor":
        from .tensor_compile import compile_tensor

        compile_tensor(result, model, chips, estimate_at)
        return result
    for stage in split(graph, chips, target):
        sched = schedule(stage, target, estimate_at, None)
        program, weights = lower(stage, sched, target)
        result.programs.append(program)
        result.weights.append(weights)
        result.summaries.append(summarize(stage, sched, program, target, model, computed,
                                          estimate_at))
    moves = _transfers(result.programs, target)
    result.manifest = _manifest(result, moves, chips)
    return result


def _manifest(result, moves, chips) -> dict:
    stages = [s["estimated_latency_s"] for s in result.summaries]
    sent = [sum(m["seconds"] for m in moves if m["from"] == k) for k in range(chips)]
    return {"format": "npuc-chips", "version": 1, "target": result.target.name,
            "chips": chips, "parallelism": "pipeline", "precision": result.precision,
            "link": None if result.target.link is None else result.target.link.kind,
            "stages": [{"chip": k, "nodes": s["nodes_on_npu"] + s["nodes_on_cpu"],
                        "estimated_latency_s": stages[k], "send_s": sent[k],
                        "weights_bytes": s["weights_bytes"]}
                       for k, s in enumerate(result.summaries)],
            "transfers": moves,
            "estimated_latency_s": sum(stages) + sum(m["seconds"] for m in moves),
            "pipelined_inputs_per_s": 1.0 / max(a + b for a, b in zip(stages, sent))
            if max(stages) > 0 else 0.0}

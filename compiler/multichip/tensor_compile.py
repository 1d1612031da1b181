"""Compiling and simulating the tensor-parallel split of :mod:`.tensor`.

A chip's program is ``{"format": "npuc-segments", "segments": [program, ...]}``, each
segment a program of the command-stream format whose weights lie in the chip's blob at
``weights_offsets[s]``. A segment that ends with a split product ends with a collective
command: the tensor it makes, the part this chip holds, the bytes of the whole tensor and
the time on the chip's link of a ring:

- ``all_gather`` (a column split): ``chips - 1`` hops of one part each;
- ``all_reduce`` (a row split's partial sums): a reduce-scatter and an all-gather,
  ``2 (chips - 1)`` hops of ``1/chips`` of the tensor each; ``order`` says how the sum
  is taken (``"chip"``: float32, in chip order).

``sharded_outputs`` names the model outputs (an attention's key/value cache split by
heads) each chip holds its slice of, with the axis the slices join along in chip order.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.errors import NpucError

from .tensor import segment_graphs


def _collective(target, name: str, nbytes: int, chips: int) -> dict:
    """The collective that joins ``name`` (a ``.part`` or a ``.partial``) over the chips."""
    from .tensor import PARTIAL

    reduce = name.endswith(PARTIAL)
    hops = (2 if reduce else 1) * (chips - 1)
    seconds = target.link.seconds(nbytes / chips, hops=hops) if chips > 1 else 0.0
    cmd = {"op": "all_reduce" if reduce else "all_gather",
           "tensor": name.rsplit(".", 1)[0], "part": name, "chips": chips, "bytes": nbytes,
           "seconds": seconds}
    cmd.update({"order": "chip"} if reduce else {"axis": -1})
    return cmd


def _joined(program: dict):
    """The output of a segment a collective joins, or None."""
    from .tensor import PART, PARTIAL

    return next((n for n in program["outputs"] if n.endswith(PART) or n.endswith(PARTIAL)),
                None)


def compile_tensor(result, model, chips: int, estimate_at: str) -> None:
    """Fill ``result`` with one segmented program per chip."""
    from npuc.compiler.lower import lower
    from npuc.compiler.lower.blob import Concat
    from npuc.compiler.lower.encode import type_bytes
    from npuc.compiler.report import summarize
    from npuc.compiler.schedule import schedule
    from npuc.compiler.schedule.tile_cache import TileCache
    from npuc.ir.decisions import log_of

    from .heads import blocks, sharded_outputs
    from .tensor import PARTIAL

    target = result.target
    collectives = []
    attention = blocks(result.graph, chips)[1]
    for d in attention:
        log_of(result.graph).record("tensor-parallel", d["attention"], d["action"],
                                    d["reason"])
    sharded = sharded_outputs(result.graph, chips)
    tiles = TileCache()  # every chip's segments repeat the same layers
    for chip in range(chips):
        programs, sizes, summaries, blob = [], [], [], Concat()
        for graph in segment_graphs(result.graph, chips, chip):
            sched = schedule(graph, target, estimate_at, None, tiles)
            # kept in a file (never read back): the chip's blob copies its data, not
            # its holes (a sparse model's weights)
            program, weights = lower(graph, sched, target, in_memory=0)
            part = _joined(program)
            if part is not None:
                nbytes = type_bytes(program["tensors"][part])
                cmd = _collective(target, part, nbytes * (1 if part.endswith(PARTIAL)
                                                          else chips), chips)
                program["commands"].append(cmd)
                if chip == 0:
                    collectives.append({k: cmd[k] for k in ("op", "tensor", "bytes",
                                                            "seconds")})
            programs.append(program)
            sizes.append(len(weights))
            blob.add(weights)
            del weights
            summaries.append(summarize(graph, sched, program, target, model,
                                       result.precision, estimate_at))
        offsets = list(np.cumsum([0] + sizes[:-1]).tolist())
        result.programs.append({"format": "npuc-segments", "version": 1,
                                "segments": programs, "weights_offsets": offsets,
                                "sharded_outputs": sharded})
        result.weights.append(blob.finish())
        result.summaries.append(_chip_summary(summaries))
    result.parallelism = "tensor"
    result.manifest = _manifest(result, collectives, chips)
    result.manifest["attention"] = attention


def _chip_summary(summaries: list[dict]) -> dict:
    keys = ("estimated_latency_s", "weights_bytes", "nodes_on_npu", "nodes_on_cpu")
    out = {k: sum(s[k] for s in summaries) for k in keys}
    out["segments"] = [{k: s[k] for k in keys} for s in summaries]
    out["format"], out["version"] = "npuc-chip-summary", 1
    return out


def _manifest(result, collectives, chips) -> dict:
    per_segment = [max(s["segments"][i]["estimated_latency_s"] for s in result.summaries)
                   for i in range(len(result.summaries[0]["segments"]))]
    collective = sum(g["seconds"] for g in collectives)
    return {"format": "npuc-chips", "version": 1, "target": result.target.name,
            "chips": chips, "parallelism": "tensor", "precision": result.precision,
            "link": result.target.link.kind,
            "stages": [{"chip": k, "nodes": s["nodes_on_npu"] + s["nodes_on_cpu"],
                        "estimated_latency_s": s["estimated_latency_s"],
                        "send_s": collective, "weights_bytes": s["weights_bytes"]}
                       for k, s in enumerate(result.summaries)],
            "transfers": collectives, "segments": len(per_segment),
            "estimated_latency_s": sum(per_segment) + collective,
            "pipelined_inputs_per_s": 1.0 / (sum(per_segment) + collective)}


def simulate_segments(programs: list, weights: list, inputs: dict) -> dict:
    """Run every chip's segments in step, with the collective after each; the model's
    outputs."""
    from npuc.compiler.executor.simulator import simulate

    chips = len(programs)
    envs = [dict(inputs) for _ in range(chips)]
    count = len(programs[0]["segments"])
    for s in range(count):
        for c in range(chips):
            seg = programs[c]["segments"][s]
            blob = _segment_blob(weights[c], programs[c], s)
            feeds = {}
            for name in seg["inputs"]:
                if name not in envs[c]:
                    raise NpucError(f"chip {c}, segment {s}: input '{name}' was never made")
                feeds[name] = envs[c][name]
            local = dict(seg, commands=[x for x in seg["commands"]
                                        if x["op"] not in ("all_gather", "all_reduce")])
            envs[c].update(simulate(local, blob, feeds))
        for cmd in [x for x in programs[0]["segments"][s]["commands"]
                    if x["op"] in ("all_gather", "all_reduce")]:
            parts = [envs[c][cmd["part"]] for c in range(chips)]
            if cmd["op"] == "all_gather":  # the slices in chip order along the last axis
                whole = np.concatenate(parts, axis=-1)
            else:  # the partial sums added in float32, in chip order
                whole = parts[0].copy()
                for p in parts[1:]:
                    whole += p
            for c in range(chips):
                envs[c][cmd["tensor"]] = whole
    # a key/value cache split by heads stays on its chips: joined in chip order
    for name, axis in programs[0].get("sharded_outputs", {}).items():
        envs[0][name] = np.concatenate([envs[c][name] for c in range(chips)], axis=axis)
    return envs[0]


def _segment_blob(blob: bytes, program: dict, s: int) -> bytes:
    offsets = program["weights_offsets"] + [len(blob)]
    return blob[offsets[s]:offsets[s + 1]]

"""A decoder's KV cache as device state, written in place at the current position.

A decoder exported with its cache (``use_cache``) returns ``present.{i}.key`` /
``.value`` ``[batch, kv_heads, T, head_dim]``: in decode form ``Concat(past, new)`` along
the sequence axis (a copy of the whole cache every step), in prefill form the new keys
themselves. :func:`attach_cache` (the compile's ``max_seq``) rewrites both into the form a
serving chip runs:

- each cache is one device buffer ``[batch, kv_heads, max_seq, head_dim]`` that lives
  across programs and steps (the program's ``state``), not an input or an output;
- a new input ``cache_position`` ``[s]`` (int64) names the positions the step's ``s``
  tokens take (HuggingFace's ``cache_position``); ``npuc::KVCacheWrite`` writes the new
  keys and values there, and on the chip that is a DMA of the ``s`` new rows into the
  cache (a ``kv_write`` command), nothing else of the cache moves;
- the cache holds ``rows`` sequences (batch rows, the largest decode batch of the
  artifact; the program's own batch when not given). A decode program at batch ``b``
  reads and writes the leading ``b`` rows of that buffer (its cache value is ``[b, ...]``
  at the buffer's start, no copy); a prefill program whose batch is smaller than
  ``rows`` takes one more input ``cache_row`` (``[1]``, int64): the first row its
  sequences' keys and values go to (a server's slot for the request);
- in decode form (``past + s == max_seq``) attention reads the whole cache; the positions
  not yet written are masked by ``attention_mask`` (0 there), so the step computes what
  the original model computes on the filled part. In prefill form (no past, or a past of
  length 0) attention reads the new keys as before and the cache is only written.

The scheduler keeps the write out of SRAM (no tile buffers, priced as the DMA of its new
rows), never keeps a cache in SRAM, places every cache at the start of the DRAM arena in
name order (so the prefill and decode programs of one compile find them at the same
offsets) and makes the write's result the same buffer as the cache it writes
(:mod:`.kvcache_state`).
"""

from __future__ import annotations

from dataclasses import dataclass

from npuc.ir.errors import NpucError
from npuc.ir.types import tensor

POSITION = "cache_position"
ROW = "cache_row"
WRITE = ("npuc", "KVCacheWrite")


@dataclass(frozen=True)
class CacheEntry:
    """One cache: its state name (the model's ``present`` output), the graph input that
    holds it, and the write node."""

    state: str
    input: str
    node: str


def is_write(node) -> bool:
    return (node.domain, node.op_type) == WRITE


def entries(graph) -> list[CacheEntry]:
    """The caches :func:`attach_cache` made (none for a graph without them)."""
    return [CacheEntry(**e) for e in graph.meta.get("kv_cache", {}).get("entries", [])]


def attach_cache(graph, max_seq: int, rows: int | None = None,
                 scales: dict | None = None) -> list[CacheEntry]:
    """Rewrite ``graph``'s KV cache outputs into device state of ``max_seq`` positions and
    ``rows`` batch rows (the graph's batch when None); ``scales``: the fp8 scale of each
    cache (by state name) that every program of the artifact stores it with."""
    if max_seq < 1:
        raise NpucError(f"--max-seq must be at least 1, not {max_seq}")
    found = _cache_outputs(graph)
    if not found:
        raise NpucError("--max-seq: the model returns no KV cache (no output named "
                        "present* of rank 4, or Concat(past, new) of a past input); export "
                        "it with use_cache")
    steps = {new.type.shape[2] for _, _, new in found}
    if len(steps) != 1:
        raise NpucError(f"--max-seq: the caches take different numbers of new positions "
                        f"({sorted(steps)})")
    s = steps.pop()
    if s > max_seq:
        raise NpucError(f"--max-seq {max_seq} is shorter than the {s} tokens the model "
                        "takes at once")
    batch = found[0][2].type.shape[0]
    rows = batch if rows is None else rows
    if not isinstance(batch, int) or batch > rows:
        raise NpucError(f"the model's batch ({batch}) is larger than the KV cache's "
                        f"{rows} rows (the largest decode batch)")
    taken = {v.name for v in graph.inputs}
    for name in (POSITION, ROW):
        if name in taken:
            raise NpucError(f"the model already has an input named {name!r}")
    pos = graph.add_input(POSITION, tensor("i64", [s]))
    row = None
    if rows > batch and any(past is None or past.type.shape[2] == 0 for _, past, _ in found):
        row = graph.add_input(ROW, tensor("i64", [1]))
    made = []
    for out, past, new in found:
        made.append(_rewrite(graph, out, past, new, (pos, row), max_seq, rows))
    made.sort(key=lambda e: e.state)
    graph.meta["kv_cache"] = {"max_seq": max_seq, "position": POSITION, "axis": 2,
                              "rows": rows, "batch": batch,
                              "entries": [e.__dict__ for e in made]}
    if row is not None:
        graph.meta["kv_cache"]["row"] = ROW
    if scales:
        graph.meta["kv_cache"]["scales"] = dict(scales)
    return made


def _cache_outputs(graph) -> list:
    """``(output, past input or None, new keys)`` for every cache output."""
    inputs = {id(v) for v in graph.inputs}
    found = []
    for out in graph.outputs:
        shape = out.type.shape if out.type is not None else None
        if shape is None or len(shape) != 4:
            continue
        p = out.producer
        if p is not None and p.op_type == "Concat" and p.domain in ("", "ai.onnx") and \
                len(p.inputs) == 2 and p.attrs.get("axis") in (2, -2) and \
                id(p.inputs[0]) in inputs:
            found.append((out, p.inputs[0], p.inputs[1]))
        elif out.name.startswith("present") and p is not None:
            found.append((out, None, out))
    return found


def _rewrite(graph, out, past, new, at, max_seq: int, rows: int) -> CacheEntry:
    """One cache rewritten; ``at``: the position input and the row input (or None)."""
    b, h, _, d = out.type.shape
    pos, row = at
    state = out.name
    full = out.type.with_shape((b, h, max_seq, d))
    concat = past is not None and out.producer is not None and out.producer.op_type == "Concat"
    if concat and past.type.shape[2] != 0:
        total = past.type.shape[2] + new.type.shape[2]
        if total != max_seq:
            raise NpucError(f"--max-seq {max_seq}: the model's cache input {past.name} holds "
                            f"{past.type.shape[2]} positions and {new.type.shape[2]} come per "
                            f"step ({total} in all); compile the decode form with past = "
                            f"{max_seq - new.type.shape[2]}")
        if len(past.uses) != 1:
            raise NpucError(f"the cache input {past.name} is read by more than the Concat "
                            "that appends to it")
        past.type = full
        conc = out.producer
        node = graph.create_node("KVCacheWrite", [past, new, pos], [(state + ".kv", full)],
                                 {"axis": 2}, domain="npuc", name=f"{conc.name}/kv_write",
                                 before=conc)
        out.replace_all_uses_with(node.outputs[0])
        graph.remove_node(conc)
        graph.rename(node.outputs[0], state)  # the cache output keeps its name
        return CacheEntry(state, past.name, node.name)
    # prefill: it only writes the cache, whose every row it sees (from ``cache_row`` on)
    full = out.type.with_shape((rows, h, max_seq, d))
    if concat:  # a past of length 0: the new keys are the whole of it
        conc = out.producer
        out.replace_all_uses_with(new)
        graph.remove_node(conc)
        graph.inputs.remove(past)
        graph.release_name(past.name)
    fresh = graph.fresh_name(state + ".new")
    graph.release_name(fresh)  # fresh_name reserved it; the rename takes it
    graph.rename(new, fresh)
    name = graph.fresh_name(state + ".cache")
    graph.release_name(name)  # add_input claims it
    cache = graph.add_input(name, full)
    graph.release_name(state)
    after = new.producer
    node = graph.create_node("KVCacheWrite", [cache, new, pos] + ([row] if row else []),
                             [(state, full)], {"axis": 2},
                             domain="npuc", name=f"{after.name}/kv_write", after=after)
    for k, o in enumerate(graph.outputs):
        if o is new:
            graph.outputs[k] = node.outputs[0]
    return CacheEntry(state, cache.name, node.name)


# -- scheduling ----------------------------------------------------------------------------

_LAYOUT = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity"}
_NARROW = {16: "bf16", 10: "f16"}  # ONNX Cast 'to' codes of the 16-bit float formats
_PRECISION = {"bf16": "bf16", "fp16": "f16"}


def _reads_rounded(value, seen=None) -> set:
    """The 16-bit formats every reader of ``value`` rounds it to, through layout changes
    (an empty set when a reader uses it unrounded)."""
    formats = set()
    for node, _ in value.uses:
        if node.op_type == "Cast" and node.attrs.get("to") in _NARROW:
            formats.add(_NARROW[node.attrs["to"]])
        elif node.op_type in _LAYOUT and node.domain in ("", "ai.onnx"):
            below = _reads_rounded(node.outputs[0])
            if not below:
                return set()
            formats |= below
        else:
            return set()
    return formats


def mark_cache_storage(graph, precision: str) -> int:
    """Store each cache in the 16-bit format its readers round it to (a bf16 or fp16
    program's attention reads its keys and values rounded): its values then are what the
    program computes with, at half the bytes. A cache nothing reads (prefill only writes)
    is stored in the program's 16-bit precision, which its later readers round to. In an
    fp8 program, a cache its readers quantize to fp8 e4m3 per tensor is stored as those
    fp8 numbers with their scale (:mod:`.kvcache_fp8`; the artifact's scale for each
    cache, ``scales`` in the graph's ``kv_cache``, when given). Returns the bytes saved."""
    from .kvcache_fp8 import store_fp8

    values = {v.name: v for v in graph.values()}
    scales = graph.meta.get("kv_cache", {}).get("scales") or {}
    saved = 0
    for e in entries(graph):
        cache, out = values[e.input], values[e.state]
        for v in (cache, out):
            v.meta.pop("stored", None)
            v.meta.pop("stored_scale", None)
        if precision == "fp8" and store_fp8(graph, cache, out, scales.get(e.state)):
            saved += cache.type.numel * (cache.type.dtype.itemsize - 1)
            continue
        if out.uses:
            formats = _reads_rounded(out)
        else:
            formats = {f for f in (_PRECISION.get(precision),) if f}
        if len(formats) == 1:
            cache.meta["stored"] = out.meta["stored"] = formats.pop()
            saved += cache.type.numel * (cache.type.dtype.itemsize - 2)
    return saved


def kept_off_chip(graph) -> set[str]:
    """Tensors a cache write touches: never kept in SRAM (the write is a DRAM DMA)."""
    out = set()
    for node in graph.nodes:
        if is_write(node):
            out |= {v.name for v in list(node.inputs) + list(node.outputs) if v is not None}
    return out


def state_names(graph) -> set[str]:
    """The caches' inputs and outputs: device state, never moved over the host link."""
    return {n for e in entries(graph) for n in (e.state, e.input)}


def write_estimate(node, target, precision: str) -> dict:
    """The price of a cache write: its new rows (and positions) read and written once, at
    the DRAM bandwidth, plus the chip's DMA setup; no compute."""
    from .slices import Need
    from .tiling import part_bytes, with_setup

    new, pos = node.inputs[1], node.inputs[2]
    moved = part_bytes(new, Need.whole(), 1)
    read = moved + part_bytes(pos, Need.whole(), 1)
    bandwidth = target.memory.dram_bandwidth_bytes_per_s
    clock = target.compute.clock_hz
    seconds = (read + moved) / bandwidth
    cycles = seconds * clock
    est = {"precision": precision, "macs": 0, "vector_elements": 0, "input_bytes": int(read),
           "weight_bytes": 0, "output_bytes": int(moved), "dma_bytes": int(read + moved),
           "tiles": 1, "utilisation": 0.0, "compute_cycles": 0.0, "dma_cycles": cycles,
           "prologue_cycles": 0.0, "cycles": cycles, "seconds": seconds, "bound": "dma",
           "roofline": {"ops": 0.0, "bytes": int(read + moved), "compute_s": 0.0,
                        "memory_s": seconds, "bound": "memory"}}
    return with_setup(est, 1, target)

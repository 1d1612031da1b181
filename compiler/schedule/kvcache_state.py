"""Where a decoder's KV cache lives and how a program says so: its DRAM place (every
program of an artifact finds each cache at the same offset, sized for all its rows), its
bytes, and the program's ``state`` section (see :mod:`.kvcache` for the cache itself).
"""

from __future__ import annotations

from .kvcache import entries


def place_dram(graph, items, span, align: int, last: int):
    """DRAM offsets for ``items`` (``(tensor, size, first, last)``): the caches first, at
    the start of the arena in name order and live for the whole program, each write's
    result on its cache's buffer, the rest best fit around them."""
    from npuc.targets.model import align_up

    from .memplan import best_fit, plan
    from .model import Allocation

    caches = entries(graph)
    if not caches:
        return plan(items, align, None, "dram")
    values = {v.name: v for v in graph.inputs}
    pinned, offset = [], 0
    for e in sorted(caches, key=lambda e: e.state):
        # the buffer holds every row of the cache, whatever rows this program reads
        n = align_up(max(_held_bytes(graph, values[e.input]), 1), align)
        pinned.append(Allocation(e.input, "dram", offset, n, 0, last))
        offset += n
    taken = {e.input for e in caches} | {e.state for e in caches}
    rest = sorted((it for it in items if it[0] not in taken), key=lambda it: (-it[1], it[2], it[0]))
    placed = best_fit(rest, align, pinned, None, "dram")
    at = {a.name: a for a in pinned}
    for e in caches:
        first, end = span.get(e.state, (0, last))
        placed.append(Allocation(e.state, "dram", at[e.input].offset, at[e.input].size, first, end))
    return placed


def _held_bytes(graph, cache) -> int:
    """The bytes of the device buffer behind ``cache``: all the cache's rows (a decode
    program's cache value is its leading rows only)."""
    from .slices import Need
    from .tiling import part_bytes

    meta = graph.meta["kv_cache"]
    rows, batch = meta.get("rows"), cache.type.shape[0]
    whole = part_bytes(cache, Need.whole(), 1)
    return whole if rows is None or rows == batch else whole // batch * rows


def cache_bytes(graph) -> int:
    """The bytes of every cache (the state the programs keep on the device), at all its
    rows."""
    values = {v.name: v for v in graph.inputs}
    return sum(_held_bytes(graph, values[e.input]) for e in entries(graph))


def add_state(program: dict, graph) -> dict:
    """The program with its caches moved from its inputs and outputs to ``state``: the
    buffers a runtime allocates once and keeps across programs and steps."""
    caches = entries(graph)
    if not caches:
        return program
    meta = graph.meta["kv_cache"]
    tensors = []
    for e in caches:
        ref = program["inputs"].pop(e.input)
        program["outputs"].pop(e.state, None)
        tensors.append({"name": e.state, "input": e.input, "space": ref["space"],
                        "offset": ref["offset"], "shape": ref["shape"],
                        "dtype": ref.get("stored") or program["tensors"][e.input]["dtype"]})
        if ref.get("scale") is not None:  # fp8 of value / scale
            tensors[-1]["scale"] = ref["scale"]
    program["state"] = {"kind": "kv_cache", "max_seq": meta["max_seq"],
                        "position": meta["position"], "axis": meta["axis"],
                        "rows": meta.get("rows", tensors[0]["shape"][0]),
                        "batch": meta.get("batch", tensors[0]["shape"][0]),
                        "bytes": cache_bytes(graph), "tensors": tensors}
    if meta.get("row"):
        program["state"]["row"] = meta["row"]
    return program

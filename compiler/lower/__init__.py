"""Lowering: a scheduled graph becomes a program for the chip.

The program (format ``npuc-program``, version :data:`PROGRAM_VERSION`) is a list of
commands over three memories, each a flat byte array whose size the memory plan gives:
``sram`` (on chip), ``dram`` (the activation arena) and ``weights`` (the weight blob, in
the chip's layout). A buffer reference names a tensor, a memory, a byte offset, the shape
stored there, and optionally a run ``[axis, lo, hi]`` of that shape; a weight stored in a
narrower format than its tensor type (bf16 or fp16, exact, see
:mod:`npuc.compiler.schedule.storage`) says so with ``"stored"``.

Per NPU group and tile:

- ``dma_load``: copy a run of a tensor from DRAM (or the weights) into an SRAM buffer;
  weights once per group (or their columns per tile, when the tiles cut them), streamed
  inputs per tile into one of two slots;
- ``sync`` ``dma``: the compute below waits for those loads;
- ``compute``: run one node on an engine (``mac`` or ``vector``) over the tile, reading
  and writing SRAM; per-tile attributes (the padding of a halo tile) in ``attrs``; a row
  Gather from a constant table (an embedding) runs on the ``dma`` engine and reads only
  the rows its indices name, straight from the weights;
- ``sync`` ``compute`` and ``dma_store``: write the tile of the group's output to DRAM,
  unless the output stays in SRAM for the next group (cascading).

A KV-cache write (``npuc::KVCacheWrite``) is one ``kv_write`` command: the DMA engine
copies the new rows into the cache in DRAM at the positions a tensor holds (from the batch
row another holds on, for a prefill into one row of a cache of several). CPU groups are
``cpu`` commands over DRAM. The simulator
(:mod:`npuc.compiler.executor.simulator`) runs exactly this.

:func:`lower` runs in three parts: the weight blob (:mod:`.weights`), the node table,
and the commands of each group (:mod:`.group` for the NPU's, typed objects of
:mod:`.commands`), serialized at the end.
"""

from __future__ import annotations

from npuc.ir.analysis import captured_values
from npuc.ir.errors import NpucError
from npuc.ir.graph import subgraphs

from ..schedule.kvcache import is_write
from .commands import Cpu, KvWrite, to_json
from .encode import encode_value
from .group import MAC_OPS, lower_group
from .hooks import apply_hooks
from .refs import Refs
from .weights import weight_blob, weight_layouts

__all__ = ["MAC_OPS", "PROGRAM_VERSION", "lower", "node_table", "weight_blob",
           "weight_layouts"]

PROGRAM_VERSION = 1


def lower(graph, sched, target, in_memory: int | None = None) -> tuple[dict, bytes]:
    """The program (a JSON-ready dict) and the weight blob of a scheduled graph (a
    file-backed blob when larger than ``in_memory`` bytes, see :func:`weight_blob`)."""
    nodes = {n.name: n for n in graph.nodes}
    values = {v.name: v for v in graph.values()}
    plan = sched.plan
    layouts = weight_layouts(graph, target)
    refs = Refs({a.name: a for a in plan.allocations}, layouts)
    blob, digest = weight_blob(plan, values, layouts, in_memory)
    resident = set(sched.resident)
    commands: list = []
    for g in sched.groups:
        members = [nodes[n] for n in g.nodes]
        for n in members:
            for v in list(n.inputs) + list(n.outputs):
                if v is not None:
                    refs.note(v)
        if g.device != "npu":
            commands += [cpu_command(g.name, n, refs) for n in members]
        elif is_write(members[0]):
            commands.append(kv_write_command(g.name, members[0], refs))
        else:
            commands += lower_group(g, members, values, resident, refs)
    io_in = {v.name: refs.dram(v).to_json() for v in graph.inputs}
    io_out = {v.name: refs.dram(v).to_json() for v in graph.outputs}
    for v in graph.outputs:
        if v.name in resident:
            raise NpucError(f"internal: output {v.name} was kept in SRAM")
    program = {
        "format": "npuc-program", "version": PROGRAM_VERSION, "target": target.name,
        "precision": sched.precision, "opset": dict(sorted(graph._root().opset.items())),
        "inputs": io_in, "outputs": io_out, "tensors": dict(sorted(refs.tensors.items())),
        "nodes": node_table(nodes[n] for g in sched.groups for n in g.nodes),
        "memory": memory_section(plan, target, len(blob)),
        "groups": [{"name": g.name, "device": g.device, "nodes": g.nodes} for g in sched.groups],
        "commands": apply_hooks(target, to_json(commands), nodes),
        "estimate": {"seconds": sched.estimated_seconds},
        "weights_sha256": digest,
    }
    return program, blob


def cpu_command(group: str, node, refs: Refs) -> Cpu:
    """The host's command for ``node``, over DRAM."""
    captured = {v.name: v for sub in subgraphs(node) for v in captured_values(sub)}
    return Cpu(group, node.name,
               tuple(None if v is None else refs.dram(v) for v in node.inputs),
               tuple(None if v is None else refs.dram(v) for v in node.outputs),
               {k: refs.dram(v) for k, v in sorted(captured.items())})


def kv_write_command(group: str, node, refs: Refs) -> KvWrite:
    """The ``kv_write`` command: the DMA engine copies the new rows into the cache at the
    positions ``cache_position`` holds (read from DRAM when the command runs)."""
    cache, new, pos = node.inputs[:3]
    row = node.inputs[3] if len(node.inputs) > 3 else None
    return KvWrite(group, node.name, int(node.attrs.get("axis", 2)), refs.dram(new),
                   refs.dram(pos), refs.dram(node.outputs[0]),
                   refs.dram(row) if row is not None else None)


def node_table(nodes) -> dict:
    """``{name: {op_type, domain, attrs, outputs}}`` of the scheduled nodes, sorted."""
    table = {n.name: {"op_type": n.op_type, "domain": n.domain,
                      "attrs": {k: encode_value(v, n.describe())
                                for k, v in sorted(n.attrs.items())},
                      "outputs": len(n.outputs)} for n in nodes}
    return dict(sorted(table.items()))


def memory_section(plan, target, weights_bytes: int) -> dict:
    """The program's ``memory``: capacities, peaks and every buffer of the plan."""
    return {"alignment": plan.alignment, "sram_capacity": plan.sram_capacity,
            "dram_capacity": target.memory.dram_bytes,
            "sram_bytes": plan.peak("sram"), "dram_bytes": plan.peak("dram"),
            "weights_bytes": weights_bytes,
            "buffers": [{"name": a.name, "space": a.space, "offset": a.offset,
                         "size": a.size, "first": a.first, "last": a.last}
                        for a in sorted(plan.allocations,
                                        key=lambda a: (a.space, a.offset, a.name))]}

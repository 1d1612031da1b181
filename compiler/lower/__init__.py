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

CPU groups are ``cpu`` commands over DRAM. The simulator
(:mod:`npuc.compiler.executor.simulator`) runs exactly this.
"""

from __future__ import annotations

from npuc.ir.errors import NpucError
from npuc.ir.graph import captured_values, subgraphs

from ..schedule.kvcache import is_write, write_command
from ..schedule.slices import Need, base_op, shape_of
from ..schedule.storage import stored_array
from ..schedule.tiling import part_shape, walk
from .encode import encode_type, encode_value

PROGRAM_VERSION = 1
MAC_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Attention", "GatedMLP"}


def weight_layouts(graph, target) -> dict[str, str]:
    """``{constant: layout}`` for weights stored in a layout other than ONNX's.

    A chip that prefers NHWC reads convolution weights as OHWI (output channel, kernel
    rows, kernel columns, input channel); others keep OIHW.
    """
    if target.layout.preferred.upper() != "NHWC":
        return {}
    layouts: dict[str, str] = {}
    refused: set[str] = set()
    for node in graph.nodes:
        for i, v in enumerate(node.inputs):
            if v is None or v.const is None:
                continue
            if i == 1 and base_op(node) == "Conv" and v.const.ndim == 4:
                layouts[v.name] = "ohwi"
            else:
                refused.add(v.name)
    return {k: lay for k, lay in layouts.items() if k not in refused}


def _stored(array, layout: str | None):
    import numpy as np

    if layout == "ohwi":
        return np.ascontiguousarray(array.transpose(0, 2, 3, 1))
    return np.ascontiguousarray(array)


def lower(graph, sched, target) -> tuple[dict, bytes]:
    """The program (a JSON-ready dict) and the weight blob of a scheduled graph."""
    import numpy as np

    nodes = {n.name: n for n in graph.nodes}
    values = {v.name: v for v in graph.values()}
    plan = sched.plan
    alloc = {a.name: a for a in plan.allocations}
    layouts = weight_layouts(graph, target)
    tensors: dict[str, dict] = {}

    def note(v):
        if v.name not in tensors:
            tensors[v.name] = encode_type(v.type)

    def ref(v, space, buffer_name, shape, need: Need | None = None, base: int = 0, slot=0):
        note(v)
        a = alloc[buffer_name]
        r = {"tensor": v.name, "space": space, "offset": a.offset + slot, "shape": list(shape),
             "slice": None}
        if need is not None and need.axis is not None:
            r["slice"] = [need.axis, need.lo - base, need.hi - base]
        if space == "weights" or buffer_name.split("/")[1:2] == ["w"]:
            if layouts.get(v.name):
                r["layout"] = layouts[v.name]
            if v.meta.get("stored"):
                r["stored"] = v.meta["stored"]
        return r

    def dram_ref(v, need=None):
        if v.const is not None:
            return ref(v, "weights", v.name, _stored(v.const, layouts.get(v.name)).shape, need)
        return ref(v, "dram", v.name, shape_of(v), need)

    blob, digest = weight_blob(plan, values, layouts)
    commands: list[dict] = []
    node_table: dict[str, dict] = {}
    resident = set(sched.resident)
    for g in sched.groups:
        members = [nodes[n] for n in g.nodes]
        for n in members:
            node_table[n.name] = {
                "op_type": n.op_type, "domain": n.domain,
                "attrs": {k: encode_value(v, n.describe()) for k, v in sorted(n.attrs.items())},
                "outputs": len(n.outputs)}
            for v in list(n.inputs) + list(n.outputs):
                if v is not None:
                    note(v)
        if g.device != "npu":
            for n in members:
                cmd = {"op": "cpu", "group": g.name, "node": n.name,
                       "inputs": [None if v is None else dram_ref(v) for v in n.inputs],
                       "outputs": [None if v is None else dram_ref(v) for v in n.outputs]}
                captured = {v.name: v for sub in subgraphs(n) for v in captured_values(sub)}
                if captured:  # what its subgraphs read from the graph around them
                    cmd["captures"] = {k: dram_ref(v) for k, v in sorted(captured.items())}
                commands.append(cmd)
            continue
        if is_write(members[0]):
            commands.append(write_command(g, members[0], dram_ref))
            continue
        commands += _lower_group(g, members, values, alloc, resident, ref, dram_ref)
    io_in = {v.name: dram_ref(v) for v in graph.inputs}
    io_out = {v.name: dram_ref(v) for v in graph.outputs}
    for v in graph.outputs:
        if v.name in resident:
            raise NpucError(f"internal: output {v.name} was kept in SRAM")
    program = {
        "format": "npuc-program", "version": PROGRAM_VERSION, "target": target.name,
        "precision": sched.precision,
        "opset": dict(sorted(graph._root().opset.items())),
        "inputs": io_in, "outputs": io_out, "tensors": dict(sorted(tensors.items())),
        "nodes": dict(sorted(node_table.items())),
        "memory": {"alignment": plan.alignment, "sram_capacity": plan.sram_capacity,
                   "dram_capacity": target.memory.dram_bytes,
                   "sram_bytes": plan.peak("sram"), "dram_bytes": plan.peak("dram"),
                   "weights_bytes": len(blob),
                   "buffers": [{"name": a.name, "space": a.space, "offset": a.offset,
                                "size": a.size, "first": a.first, "last": a.last}
                               for a in sorted(plan.allocations,
                                               key=lambda a: (a.space, a.offset, a.name))]},
        "groups": [{"name": g.name, "device": g.device, "nodes": g.nodes} for g in sched.groups],
        "commands": commands,
        "estimate": {"seconds": sched.estimated_seconds},
    }
    program["weights_sha256"] = digest
    del np
    return program, blob


def weight_blob(plan, values, layouts) -> tuple[bytes, str]:
    """The weight blob in the order the plan gave, and its SHA-256.

    Each weight is written to a temporary file as it is converted to its stored form, and
    the blob is read back once: memory holds the blob one time (plus one weight), not the
    two or three copies that assembling it in a buffer and freezing that would take.
    """
    import hashlib
    import tempfile

    digest = hashlib.sha256()
    size = plan.peak("weights")
    with tempfile.TemporaryFile() as f:
        pos = 0
        for a in sorted(plan.in_space("weights"), key=lambda a: a.offset):
            data = _stored(stored_array(values[a.name]), layouts.get(a.name))
            view = memoryview(data.reshape(-1).view("u1")) if data.size else b""
            pad = b"\0" * (a.offset - pos)
            for part in (pad, view):
                f.write(part)
                digest.update(part)
            pos = a.offset + len(view)
            del data, view
        tail = b"\0" * (size - pos)
        f.write(tail)
        digest.update(tail)
        f.seek(0)
        blob = f.read()
    return blob, digest.hexdigest()


def _lower_group(g, members, values, alloc, resident, ref, dram_ref) -> list[dict]:
    """The commands of one NPU group, tile by tile."""
    out: list[dict] = []
    choice = g.tile
    double = choice.count > 1
    for k, (lo, hi) in enumerate(choice.ranges()):
        tw = walk(members, choice.axis, lo, hi)

        def slot(buffer_name, k=k):
            a = alloc[buffer_name]
            return (k % 2) * (a.size // 2) if double else 0

        loaded: dict[str, Need] = {}
        for name, need in sorted(tw.reads.items()):
            v = values[name]
            if name in tw.gathered:
                continue  # the DMA engine reads its rows when the gather runs
            if v.const is not None and need.axis is not None:  # a slice per tile
                b = f"{g.name}/w/{name}"
                loaded[name] = need
                out.append({"op": "dma_load", "group": g.name, "src": dram_ref(v, need),
                            "dst": ref(v, "sram", b, part_shape(v, need), slot=slot(b))})
            elif v.const is not None:
                if k == 0:
                    b = f"{g.name}/w/{name}"
                    out.append({"op": "dma_load", "group": g.name, "src": dram_ref(v),
                                "dst": ref(v, "sram", b, dram_ref(v)["shape"])})
            elif name not in resident:
                b = f"{g.name}/in/{name}"
                loaded[name] = need
                out.append({"op": "dma_load", "group": g.name, "src": dram_ref(v, need),
                            "dst": ref(v, "sram", b, part_shape(v, need), slot=slot(b))})
        out.append({"op": "sync", "group": g.name, "wait": "dma"})
        made: dict[str, Need] = {}
        stores = []
        for step in tw.steps:
            node = step.node
            inputs = []
            for v, need in zip(node.inputs, step.rule.needs):
                if v is None:
                    inputs.append(None)
                elif v.name in tw.gathered:
                    inputs.append(dram_ref(v))
                elif v.const is not None and v.name in loaded:
                    b = f"{g.name}/w/{v.name}"
                    inputs.append(ref(v, "sram", b, part_shape(v, loaded[v.name]),
                                      slot=slot(b)))
                elif v.const is not None:
                    b = f"{g.name}/w/{v.name}"
                    inputs.append(ref(v, "sram", b, dram_ref(v)["shape"], need))
                elif v.name in resident:
                    inputs.append(ref(v, "sram", f"res/{v.name}", shape_of(v), need))
                elif v.name in made:
                    have = made[v.name]
                    inputs.append(ref(v, "sram", f"{g.name}/t/{v.name}", part_shape(v, have),
                                      need if need.axis is not None and have.axis is not None
                                      and (need.lo, need.hi) != (have.lo, have.hi) else None,
                                      base=have.lo))
                else:
                    have = loaded[v.name]
                    b = f"{g.name}/in/{v.name}"
                    same = need.axis is None or (have.axis == need.axis and
                                                 (need.lo, need.hi) == (have.lo, have.hi))
                    inputs.append(ref(v, "sram", b, part_shape(v, have),
                                      None if same else need, base=have.lo, slot=slot(b)))
            results = []
            for i, o in enumerate(node.outputs):
                part = step.out if i == 0 else Need.whole()
                if o is None:
                    results.append(None)
                elif o.name in tw.internal:
                    made[o.name] = part
                    results.append(ref(o, "sram", f"{g.name}/t/{o.name}", part_shape(o, part)))
                elif o.name in resident:
                    results.append(ref(o, "sram", f"res/{o.name}", shape_of(o), part))
                else:
                    b = f"{g.name}/out/{o.name}"
                    results.append(ref(o, "sram", b, part_shape(o, part), slot=slot(b)))
                    stores.append((o, b, part))
            engine = "mac" if base_op(node) in MAC_OPS else \
                "dma" if any(v is not None and v.name in tw.gathered for v in node.inputs) \
                else "vector"
            cmd = {"op": "compute", "group": g.name, "node": node.name, "engine": engine,
                   "tile": None if step.out.axis is None else
                   [step.out.axis, step.out.lo, step.out.hi],
                   "inputs": inputs, "outputs": results}
            if step.rule.attrs:
                cmd["attrs"] = {k: encode_value(v) for k, v in sorted(step.rule.attrs.items())}
            out.append(cmd)
        if stores:
            out.append({"op": "sync", "group": g.name, "wait": "compute"})
        for o, b, part in stores:
            out.append({"op": "dma_store", "group": g.name,
                        "src": ref(o, "sram", b, part_shape(o, part), slot=slot(b)),
                        "dst": dram_ref(o, part)})
    return out

"""The command-stream simulator: runs a lowered program through explicit memories.

SRAM, the DRAM activation arena and the weight blob are flat numpy byte arrays of the
sizes the program's memory plan gives. Every command reads and writes them through
typed views at the offsets the program names: a DMA copies a run of a tensor between
memories, a ``compute`` calls the executor's kernel for its node on the tile's buffers,
a ``cpu`` command does the same over DRAM. Nothing else holds data between commands, so a
wrong tile, a wrong halo or two buffers placed on top of each other change the numbers,
and ``npuc verify`` sees it.

The simulator also checks what it can see directly: buffers inside their memory, the
program's version, the weight blob's checksum, and that a compute never reads an SRAM
buffer whose load has not been waited for (``sync``).
"""

from __future__ import annotations

import math
import mmap

import numpy as np

from npuc.ir.dtypes import dtype as ir_dtype
from npuc.ir.errors import NpucError

SUPPORTED_VERSIONS = (1,)


class SimulationError(NpucError):
    """A program that cannot run as written: a buffer outside its memory, a bad command."""


class _Node:
    """What a kernel may ask of its node: a name for messages and its attributes."""

    def __init__(self, name, op_type, domain, attrs):
        self.name, self.op_type, self.domain, self.attrs = name, op_type, domain, attrs
        self.outputs, self.inputs = [], []

    def describe(self) -> str:
        q = f"{self.domain}::{self.op_type}" if self.domain else self.op_type
        return f"{q} node '{self.name}' (simulated)"


class Machine:
    """The memories of one run and the views into them."""

    def __init__(self, program: dict, weights: bytes, target=None, dram=None):
        mem = program["memory"]
        self.program = program
        sram, capacity = _capacities(program, target)
        # SRAM is the chip's whole SRAM (zero pages cost nothing until touched); the DRAM
        # arena is the program's claim, which was checked against the chip's DRAM, or the
        # caller's when it keeps state (a KV cache) there across programs
        if dram is None or dram.size < mem["dram_bytes"]:
            dram = np.zeros(max(min(mem["dram_bytes"], capacity), 1), np.uint8)
        self.spaces = {"sram": np.zeros(max(sram, 1), np.uint8), "dram": dram,
                       "weights": np.frombuffer(weights, np.uint8)}
        self.dtypes = {name: ir_dtype(t["dtype"]).numpy for name, t in program["tensors"].items()}
        self.in_flight: set[int] = set()  # SRAM offsets loaded since the last sync

    def view(self, r: dict, sliced: bool = True) -> np.ndarray:
        """The array a buffer reference names (its run, when it has one)."""
        space = self.spaces[r["space"]]
        dt = self.dtypes[r["tensor"]] if not r.get("stored") else \
            ir_dtype(r["stored"]).numpy
        shape = tuple(r["shape"])
        n = math.prod(shape) * dt.itemsize
        off = r["offset"]
        if off < 0 or off + n > space.size:
            raise SimulationError(f"buffer of {r['tensor']} at {r['space']}[{off}:{off + n}] "
                                  f"is outside the {space.size}-byte {r['space']}")
        arr = space[off:off + n].view(dt).reshape(shape)
        layout = r.get("layout")
        if layout == "ohwi":
            arr = arr.transpose(0, 3, 1, 2)
        elif layout:
            raise SimulationError(f"unknown weight layout {layout!r}")
        if sliced and r.get("slice"):
            axis, lo, hi = r["slice"]
            index = [slice(None)] * arr.ndim
            index[axis] = slice(lo, hi)
            arr = arr[tuple(index)]
        return arr

    def write(self, r: dict, value) -> None:
        dst = self.view(r)
        value = np.asarray(value)
        if value.shape != dst.shape and value.size == dst.size and not r.get("slice"):
            value = value.reshape(dst.shape)  # a scalar written as [1], a kernel's spelling
        if value.shape != dst.shape:
            raise SimulationError(f"{r['tensor']}: result of shape {list(value.shape)} does "
                                  f"not fit its tile {list(dst.shape)}")
        np.copyto(dst, value, casting="unsafe")


def _capacities(program: dict, target) -> tuple[int, int]:
    """The chip's SRAM and DRAM sizes (from ``target`` when given, else as the program
    records them); a program claiming more than the chip has is refused."""
    mem = program["memory"]
    if target is not None:
        if program.get("target") != target.name:
            raise SimulationError(f"the program was compiled for {program.get('target')!r}, "
                                  f"not {target.name!r}")
        sram, dram = target.memory.sram_bytes, target.memory.dram_bytes
    else:
        # programs of older npuc versions do not record the chip's DRAM
        sram = mem["sram_capacity"]
        dram = mem.get("dram_capacity", mem["dram_bytes"] + mem.get("weights_bytes", 0))
    if mem["sram_bytes"] > sram:
        raise SimulationError(f"the program claims {mem['sram_bytes']} bytes of SRAM; the "
                              f"chip has {sram}")
    if mem["dram_bytes"] + mem.get("weights_bytes", 0) > dram:
        raise SimulationError(f"the program claims {mem['dram_bytes']} bytes of DRAM and "
                              f"{mem.get('weights_bytes', 0)} of weights; the chip has {dram}")
    return sram, dram


_MEMORY = ("sram_capacity", "sram_bytes", "dram_bytes")


def check_program(program, weights: bytes) -> None:
    """One-line errors for a program this simulator cannot run."""
    if not isinstance(program, dict) or program.get("format") != "npuc-program":
        raise SimulationError("not an npuc program (the 'format' field is missing)")
    from npuc.compiler.readback import PROGRAM, check

    try:
        check(program, PROGRAM, "malformed program")
    except NpucError as e:
        raise SimulationError(str(e)) from None
    for key in _MEMORY:
        value = program["memory"].get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SimulationError(f"malformed program: memory '{key}' must be a byte count")
    if not isinstance(weights, (bytes, bytearray, memoryview, mmap.mmap)):
        raise SimulationError("the weights must be bytes")
    if program.get("version") not in SUPPORTED_VERSIONS:
        raise SimulationError(f"program version {program.get('version')} is not supported by "
                              f"this npuc (it runs versions {SUPPORTED_VERSIONS}); "
                              "compile the model again")
    from npuc.compiler.lower.blob import digest as blob_digest

    if blob_digest(weights) != program.get("weights_sha256"):
        raise SimulationError("the weight blob does not belong to this program (checksum "
                              "mismatch)")


def _kv_write(m: Machine, cmd: dict, index: int) -> None:
    """Write the new rows into the cache at the positions named, in place: only those rows
    change, as a DMA engine does it."""
    from npuc.compiler.ops.kvcache import check_positions, check_row, write_rows

    cache, new = m.view(cmd["dst"]), m.view(cmd["src"])
    axis = cmd["axis"] % cache.ndim
    where = f"command {index}: kv_write of {cmd['dst']['tensor']}"
    pos = check_positions(m.view(cmd["position"]), cache.shape[axis], where)
    row = check_row(m.view(cmd["row"]) if cmd.get("row") else None, cache.shape[0],
                    new.shape[0], where)
    if cmd["dst"].get("scale") is not None:  # the cache holds fp8 of value / scale
        from npuc.compiler.executor.kernels.quant import quantize

        new = quantize(np.asarray(new, np.float32), np.float32(cmd["dst"]["scale"]), None,
                       cache.dtype)
    write_rows(cache, new, pos, axis, row)


def run_subgraph(graph, captured: dict, feeds: dict) -> list:
    """Run a subgraph of a ``cpu`` command (decoded standalone: the values it reads from
    around it are its last inputs) on the host; its outputs in order."""
    from npuc.compiler.executor.interpreter import execute

    given = {v.name: feeds[v.name] if v.name in feeds else captured[v.name]
             for v in graph.inputs}
    results = execute(graph, given)
    return [results[v.name] for v in graph.outputs]


def simulate(program: dict, weights: bytes, inputs: dict, trace=None, target=None,
             check=None, dram=None) -> dict:
    """Run ``program`` on named ``inputs``; the outputs by name.

    The memories are the chip's: ``target``'s when given, else the capacities the program
    records; a program claiming more is refused. A malformed program is a
    :class:`SimulationError` naming the command, never a crash. ``trace(index, command)``
    is called before each command; ``check(index, command, written)`` after each
    ``compute`` or ``cpu`` command, with the views its outputs were written to (``None``
    for an omitted output). ``dram``: a byte array to use as the DRAM arena, kept by the
    caller between runs: a program's ``state`` (its KV cache) lives there across steps."""
    from npuc.compiler.executor import threads

    check_program(program, weights)
    try:
        with threads.blas_limit():  # the executor's thread policy (see threads.py)
            return _simulate(program, weights, inputs, trace, target, check, dram)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
        raise SimulationError(f"malformed program: {type(e).__name__}: {e}") from None


def _simulate(program: dict, weights: bytes, inputs: dict, trace, target, check,
              dram=None) -> dict:
    from npuc.compiler.executor import threads
    from npuc.compiler.lower.encode import decode_value

    threads.configure()
    m = Machine(program, weights, target, dram)
    for name, r in program["inputs"].items():
        if name not in inputs:
            raise NpucError(f"missing input '{name}'")
        m.write(r, np.asarray(inputs[name]))
    nodes = {}
    for name, n in program["nodes"].items():
        nodes[name] = (_Node(name, n["op_type"], n["domain"],
                             {k: decode_value(v) for k, v in n["attrs"].items()}), n)
    rng = np.random.default_rng(0)
    for index, cmd in enumerate(program["commands"]):
        op = cmd["op"]
        if trace is not None:
            trace(index, cmd)
        if op in ("dma_load", "dma_store"):
            m.write(cmd["dst"], m.view(cmd["src"]))
            if op == "dma_load":
                m.in_flight.add(cmd["dst"]["offset"])
        elif op == "sync":
            m.in_flight.clear()
        elif op == "kv_write":
            _kv_write(m, cmd, index)
        elif op in ("compute", "cpu"):
            _compute(m, index, cmd, nodes[cmd["node"]], program.get("opset", {}), rng, check)
        else:
            raise SimulationError(f"command {index}: unknown operation {op!r}")
    return {name: m.view(r).copy() for name, r in program["outputs"].items()}


def _compute(m: Machine, index: int, cmd: dict, entry, opset: dict, rng, check) -> None:
    """Run a ``compute`` or ``cpu`` command: its node's kernel on the views it names."""
    from npuc.compiler.executor.interpreter import KernelFailure, evaluate
    from npuc.compiler.lower.encode import decode_type, decode_value

    node, info = entry
    args = []
    for r in cmd["inputs"]:
        if r is None:
            args.append(None)
            continue
        if r["space"] == "sram" and r["offset"] in m.in_flight:
            raise SimulationError(f"command {index}: {node.describe()} reads "
                                  f"{r['tensor']} before its load was waited for")
        arr = m.view(r)
        if r.get("stored"):  # a weight stored narrow: the kernel reads its values
            arr = arr.astype(m.dtypes[r["tensor"]])
            if r.get("scale") is not None:  # fp8 of value / scale (a KV cache)
                arr = arr * np.asarray(r["scale"], arr.dtype)
        args.append(arr)
    attrs = dict(node.attrs)
    attrs.update({k: decode_value(v) for k, v in cmd.get("attrs", {}).items()})
    out_types = []
    for r in cmd["outputs"]:
        if r is None:
            out_types.append(None)
            continue
        t = decode_type(m.program["tensors"][r["tensor"]])
        out_types.append(t.with_shape(m.view(r).shape))
    domain = node.domain or "ai.onnx"
    captured = {k: m.view(r) for k, r in cmd.get("captures", {}).items()}
    try:
        results = evaluate(node, args, attrs, opset.get(domain, opset.get("", 17)),
                           out_types, info["outputs"], rng,
                           lambda g, feeds, c=captured: run_subgraph(g, c, feeds))
    except KernelFailure as e:
        raise SimulationError(f"command {index}: {e}") from e
    for r, value in zip(cmd["outputs"], results):
        if r is not None:
            m.write(r, value)
    if check is not None:
        check(index, cmd, [None if r is None else m.view(r) for r in cmd["outputs"]])

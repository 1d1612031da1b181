"""The graph interpreter: runs IR at any stage with the registered kernels.

:func:`evaluate` runs one node: it is the one place that finds the kernel, builds its
context and turns what a kernel raises into npuc's errors. The interpreter
(:func:`execute`), the simulator and the constant folders all run nodes through it.

Each intermediate tensor is dropped right after its last use; the peak of live bytes is
measured as it runs (arrays that share a buffer are counted once). The first run of a
process fixes the C allocator's thresholds (:mod:`npuc.compiler.allocator`), so a block
freed by one run is reused by the next instead of being faulted in again
(``NPUC_REUSE_MEMORY=0`` leaves the allocator alone).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np

from npuc.compiler import ops  # noqa: F401  (npuc's own operators and their kernels)
from npuc.ir.analysis import captured_values
from npuc.ir.errors import InputError, NpucError, UnsupportedError
from npuc.ir.graph import Graph, subgraphs
from npuc.ir.limits import check_type, max_tensor_bytes
from npuc.ir.types import TensorType

from . import chains, fusion, threads
from .kernels import KernelContext, ResidualMismatch, get_kernel

# What a kernel raises when its inputs break the operator's rules (a shape that does not
# broadcast, an index out of range): the user's model is wrong, not npuc.
KERNEL_FAILURES = (ValueError, IndexError, TypeError, ZeroDivisionError, OverflowError)


class KernelFailure(NpucError):
    """A kernel refused the values it was given; the message names the node."""


class NoKernel(UnsupportedError):
    """npuc's executor has no kernel for the node's operator."""


def evaluate(node, inputs: list, attrs: dict | None = None, opset: int | None = None,
             output_types: list | None = None, num_outputs: int | None = None, rng=None,
             run_graph=None, donated: tuple = (), epilogue=None,
             limit: int | None = None) -> list:
    """Run one node on ``inputs`` (arrays in the node's order, None for an omitted input);
    its results in the order of its outputs.

    ``node`` is an IR node or anything with its ``op_type``, ``domain``, ``attrs``,
    ``outputs`` and ``describe()``. ``attrs`` replaces its attributes, ``opset`` the
    version its graph imports, ``output_types`` the declared types of its outputs (known
    sizes are checked against the limits before anything is made). ``run_graph(graph,
    feeds)`` runs the node's subgraphs (default: as standalone graphs). ``donated`` are
    the positions of inputs the kernel may overwrite (``KernelContext.donated``);
    ``epilogue`` what a convolution applies to its result (``KernelContext.epilogue``);
    ``limit`` the tensor limit, when the caller has read it (a run reads it once).
    Raises :class:`NoKernel` when npuc has no kernel for the operator, :class:`KernelFailure` when the
    kernel refuses its inputs, and any NpucError a kernel raises."""
    if opset is None:
        graph = getattr(node, "graph", None)
        opset = (graph.opset_of(node.domain) if graph is not None else None) or 1
    fn = get_kernel(node.op_type, node.domain, opset)
    if fn is None:
        qualified = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
        raise NoKernel(f"{node.describe()}: npuc's executor has no kernel for operator "
                       f"{qualified}")
    if output_types is None:
        output_types = [None if o is None else o.type for o in node.outputs]
    ctx = KernelContext(opset=opset, num_outputs=num_outputs or len(node.outputs), node=node,
                        output_types=output_types, rng=rng,
                        run_graph=run_graph or _run_standalone,
                        donated=donated if getattr(fn, "in_place", False) else (),
                        epilogue=epilogue)
    _check_outputs(output_types, node, limit)
    try:
        return fn(inputs, node.attrs if attrs is None else attrs, ctx)
    except NpucError:
        raise
    except KERNEL_FAILURES as e:
        raise KernelFailure(f"{node.describe()}: {type(e).__name__}: {e}") from e


# Output types already found within the size limit (by identity; the entry keeps the type
# alive, so its id is not reused), with the limit they were checked against: a graph run
# again does not check its static types again.
_CHECKED: dict[int, tuple] = {}


def _check_outputs(output_types: list, node, limit: int | None = None) -> None:
    """Refuse (SizeError) a node whose declared outputs would exceed the tensor limit."""
    limit = max_tensor_bytes() if limit is None else limit
    for t in output_types:
        if t is None:
            continue
        seen = _CHECKED.get(id(t))
        if seen is not None and seen[0] is t and seen[1] == limit:
            continue
        check_type(t, node.describe())
        if len(_CHECKED) > 1 << 16:
            _CHECKED.clear()
        _CHECKED[id(t)] = (t, limit)


def _run_standalone(graph: Graph, feeds: dict) -> list:
    """The outputs of a graph that reads nothing from around it, in order (with the
    products of the run that calls it)."""
    return list(execute(graph, feeds, products=threads.products()).values())


@dataclass
class RunStats:
    """What one run measured."""

    peak_bytes: int = 0  # largest total of live intermediate tensors (inputs included)
    constant_bytes: int = 0
    nodes_run: int = 0
    per_op_seconds: dict[str, float] = field(default_factory=dict)


def execute(graph: Graph, inputs: dict, stats: RunStats | None = None,
            profile: bool = False, rng=None, observe=None,
            products: str = "float64") -> dict[str, np.ndarray]:
    """Run a graph on named inputs; return its outputs by name, in the graph's order.

    ``observe(node, results)``, when given, is called after each node of the top-level
    graph with the arrays it computed. ``products`` is how float products (MatMul, Gemm,
    Conv, attention, Einsum, recurrent cells) are computed: ``"float64"``, the IR's
    definition (a float64 sum rounded once; what the simulator and verification compare
    programs against), or ``"float32"``, float32 BLAS as onnxruntime computes them, about
    twice as fast, in blocks fixed by the shapes so that the bits do not depend on the
    thread count (see ``kernels/accumulate.py``)."""
    if products not in threads.PRODUCTS:
        raise InputError(f"products must be one of {', '.join(threads.PRODUCTS)}, not "
                         f"{products!r}")
    threads.configure()
    _reuse_memory()
    env = _bind_inputs(graph, inputs)
    stats = stats if stats is not None else RunStats()
    stats.constant_bytes = sum(v.const.nbytes for v in graph.constants.values()
                               if isinstance(v.const, np.ndarray))
    rng = rng if rng is not None else np.random.default_rng(0)
    with threads.blas_limit(), threads.product_precision(products):
        results = _run(graph, env, stats, profile, rng, outer={}, observe=observe)
    return {v.name: r for v, r in zip(graph.outputs, results)}


_memory_set = False


def _reuse_memory() -> None:
    """Fix the allocator's thresholds once per process (see the module docstring)."""
    global _memory_set
    if not _memory_set:
        _memory_set = True
        if os.environ.get("NPUC_REUSE_MEMORY", "1") != "0":
            from npuc.compiler.allocator import reuse_freed_memory

            reuse_freed_memory()


def _bind_inputs(graph: Graph, inputs: dict) -> dict[int, object]:
    if not isinstance(inputs, dict):
        raise InputError("inputs must be a dict from input name to array")
    names = [v.name for v in graph.inputs]
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise InputError(f"unknown input '{unknown[0]}'; the model's inputs are: "
                         f"{', '.join(names)}")
    env: dict[int, object] = {}
    symbols: dict[str, tuple[int, str]] = {}
    for v in graph.inputs:
        if v.name not in inputs:
            raise InputError(f"missing input '{v.name}' ({v.type})")
        value = inputs[v.name]
        t = v.type
        if isinstance(t, TensorType):
            arr = np.asarray(value)
            if t.dtype.kind == "string" and arr.dtype.kind in "UO":
                arr = arr.astype(object)
            elif arr.dtype != t.dtype.numpy:
                raise InputError(f"input '{v.name}' has dtype {arr.dtype}, the model "
                                 f"expects {t.dtype.numpy} ({t})")
            if t.shape is not None:
                if arr.ndim != len(t.shape):
                    raise InputError(f"input '{v.name}' has shape {list(arr.shape)}, the "
                                     f"model expects rank {len(t.shape)} ({t})")
                for axis, (want, got) in enumerate(zip(t.shape, arr.shape)):
                    if isinstance(want, int) and want != got:
                        raise InputError(f"input '{v.name}' has shape {list(arr.shape)}, the "
                                         f"model expects {t} (axis {axis})")
                    if isinstance(want, str):
                        seen = symbols.setdefault(want, (got, v.name))
                        if seen[0] != got:
                            raise InputError(
                                f"input '{v.name}' axis {axis} is {got} but dimension "
                                f"'{want}' is {seen[0]} in input '{seen[1]}'")
            value = arr
        env[id(v)] = value
    return env


def _nbytes(arr) -> tuple[int, int]:
    if not isinstance(arr, np.ndarray):
        return 0, 0
    base = arr
    while isinstance(base.base, np.ndarray):
        base = base.base
    return id(base), base.nbytes


def _run(graph: Graph, env: dict, stats: RunStats, profile: bool, rng, outer: dict,
         observe=None) -> list:
    """Run ``graph`` with ``env`` holding its inputs (and ``outer`` the enclosing values)."""
    import time

    for v in graph.constants.values():
        env[id(v)] = v.const
    last_use = _last_uses(graph)
    keep = {id(v) for v in graph.outputs}
    own = keep | {id(v) for v in graph.inputs}  # never overwritten: the caller's arrays
    live = _LiveBytes()
    for v in graph.inputs:
        live.hold(env[id(v)])
    opset_cache: dict[str, int] = {}
    # residual Adds and activations computed by the convolution before them (float32
    # products, no observer: see fusion.py); the nodes they replace, once they did
    fast = observe is None and threads.products() == "float32"
    fusions = fusion.plan(graph) if fast else {}
    paired = chains.plan(graph, {*fusions, *(i for f in fusions.values() for i in f.skipped)}) \
        if fast else {}  # a 1x1 convolution and the depthwise one after it (chains.py)
    skipped: set[int] = set()
    limit = max_tensor_bytes()  # (read once: an environment variable)
    for index, node in enumerate(graph.nodes):
        if index in skipped:
            _drop_dead(index, node, env, last_use, keep, live)
            continue
        if node.domain not in opset_cache:
            opset_cache[node.domain] = graph.opset_of(node.domain) or 1
        args = [_value_of(node, v, env, outer) for v in node.inputs]
        run_sub = None
        if subgraphs(node):
            scope = {**outer, **env}
            run_sub = lambda g, feeds, _s=scope: _run_sub(g, feeds, _s, stats, rng)  # noqa: E731
        pair = paired.get(index)  # its depthwise node's output, or None: run apart
        results = None if pair is None else chains.run(pair, graph, node, args, [
            _value_of(pair.node, v, env, outer) for v in pair.node.inputs[1:]])
        fused = epilogue = None
        merged = results is not None  # (the pair's output and the node it skips)
        if not merged:
            donated = _donated(node, args, last_use.get(index, ()), own)
            fused = fusions.get(index)
            residual = None if fused is None else _value_of(node, fused.residual, env, outer)
            epilogue = None if fused is None else fusion.epilogue_for(fused, residual, None)
            t0 = time.perf_counter() if profile else 0.0
            try:
                results = evaluate(node, args, opset=opset_cache[node.domain], rng=rng,
                                   run_graph=run_sub, donated=donated, epilogue=epilogue,
                                   limit=limit)
            except ResidualMismatch:  # the data contradicts a declared shape: run unfused
                epilogue = None
                results = evaluate(node, args, opset=opset_cache[node.domain], rng=rng,
                                   run_graph=run_sub, donated=donated, limit=limit)
            if profile:
                key = node.qualified_type
                stats.per_op_seconds[key] = stats.per_op_seconds.get(key, 0.0) + \
                    time.perf_counter() - t0
        else:
            fused = pair
        stats.nodes_run += 1
        if observe is not None:
            observe(node, results)
        outputs = node.outputs
        if epilogue is not None or merged:  # the value of the fused nodes
            outputs = [fused.out]
            skipped.update(fused.skipped)
            stats.nodes_run += len(fused.skipped)  # computed, by the product's kernel
            if fused.reshaped:
                results = [results[0].reshape(residual.shape)]
        residual = epilogue = None  # no reference to the residual stays (see _donated)
        for out, r in zip(outputs, results):
            if out is None:
                continue
            env[id(out)] = r
            live.hold(r)
        results = r = args = None  # env alone holds the values now (see _donated)
        stats.peak_bytes = max(stats.peak_bytes, live.total())
        _drop_dead(index, node, env, last_use, keep, live)
    for v in graph.outputs:
        if id(v) not in env and id(v) not in outer:
            raise NpucError(f"graph output %{v.name} was not computed")
    return [env[id(v)] if id(v) in env else outer[id(v)] for v in graph.outputs]


def _drop_dead(index: int, node, env: dict, last_use: dict, keep: set, live) -> None:
    """Drop the values read for the last time at node ``index`` and its outputs nobody
    reads."""
    for vid in last_use.get(index, ()):
        if vid not in keep and vid in env:
            live.drop(env.pop(vid))
    for out in node.outputs:  # outputs nobody reads
        if out is not None and not out.uses and id(out) not in keep:
            live.drop(env.pop(id(out), None))


# References to an array only ``env`` holds, as _donated sees it: env's entry, the
# argument list, _donated's own variable and getrefcount's argument (tested).
_ONLY_ENV = 4


def _donated(node, args: list, dying, keep: set) -> tuple:
    """Positions of ``node``'s inputs whose arrays its kernel may overwrite.

    An input qualifies when its value is read for the last time here, once, is not an
    output or input of the graph, and its array owns its buffer with nothing else
    referring to it (no view, no constant, no observer holding it: CPython's reference
    count says so), so that nobody can see the buffer change."""
    if not dying:
        return ()
    ids = [None if v is None else id(v) for v in node.inputs]
    positions = []
    for i, vid in enumerate(ids):
        if vid is None or vid not in dying or vid in keep or ids.count(vid) > 1:
            continue
        arr = args[i]
        if (type(arr) is np.ndarray and arr.base is None and arr.flags.writeable
                and sys.getrefcount(arr) <= _ONLY_ENV):
            positions.append(i)
        del arr
    return tuple(positions)


class _LiveBytes:
    """The buffers live tensors hold, each counted once however many arrays share it."""

    def __init__(self):
        self.live: dict[int, int] = {}  # buffer id -> bytes
        self.refcount: dict[int, int] = {}
        self.bytes = 0  # the sum of live's values, kept as they change

    def hold(self, arr) -> None:
        key, n = _nbytes(arr)
        if n:
            self.refcount[key] = self.refcount.get(key, 0) + 1
            self.bytes += n - self.live.get(key, 0)
            self.live[key] = n

    def drop(self, arr) -> None:
        key, n = _nbytes(arr)
        if n and key in self.refcount:
            self.refcount[key] -= 1
            if self.refcount[key] == 0:
                del self.refcount[key]
                self.bytes -= self.live.pop(key, 0)

    def total(self) -> int:
        return self.bytes


def _value_of(node, v, env: dict, outer: dict):
    """The array ``node`` reads as ``v`` (None for an omitted input)."""
    if v is None:
        return None
    if id(v) in env:
        return env[id(v)]
    if id(v) in outer:
        return outer[id(v)]
    raise NpucError(f"{node.describe()}: input %{v.name} has no value")


def _run_sub(graph: Graph, feeds: dict, outer: dict, stats: RunStats, rng) -> list:
    env = {}
    for v in graph.inputs:
        if v.name not in feeds:
            raise NpucError(f"subgraph '{graph.name}' input '{v.name}' was not given")
        env[id(v)] = feeds[v.name]
    return _run(graph, env, stats, False, rng, outer)


def _last_uses(graph: Graph) -> dict[int, list[int]]:
    """For each node index, the values whose last reader it is."""
    last: dict[int, int] = {}
    for index, node in enumerate(graph.nodes):
        for v in node.inputs:
            if v is not None and v.graph is graph and v.const is None:
                last[id(v)] = index
        for sub in subgraphs(node):
            for v in captured_values(sub):
                if v.graph is graph and v.const is None:
                    last[id(v)] = index
    by_node: dict[int, list[int]] = {}
    for vid, index in last.items():
        by_node.setdefault(index, []).append(vid)
    return by_node

"""Calibration: run the float graph on sample inputs and observe every activation.

The float graph is run (float32 products, as onnxruntime computes them, see
``executor/kernels/accumulate.py``) one batch at a time (large batches are cut into
chunks so that memory stays bounded), and each float activation's observer sees it as
its node makes it (:func:`observe_run`): the run then drops it after its last use, or
overwrites it in place, as a plain run does, instead of keeping every activation to the
end of the run. Besides the ranges, two per-channel statistics are kept
for accuracy recovery: the mean of each Conv/Gemm input channel (bias correction) and
the largest ``|x|`` of each MatMul input column (SmoothQuant).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph
from npuc.ir.types import TensorType

from .exactsum import ExactSum
from .observers import Observer, make_observer

CHUNK = 8


@dataclass
class Stats:
    """What calibration saw, by value name. Stats of disjoint parts of the calibration
    data merge (:meth:`merge`) into exactly the stats of the whole, in any order."""

    observers: dict[str, Observer] = field(default_factory=dict)
    channel_sum: dict[str, ExactSum] = field(default_factory=dict)
    channel_count: dict[str, int] = field(default_factory=dict)
    column_absmax: dict[str, np.ndarray] = field(default_factory=dict)
    batches: int = 0

    def channel_mean(self, name: str) -> np.ndarray | None:
        if name not in self.channel_sum:
            return None
        return self.channel_sum[name].value() / max(self.channel_count[name], 1)

    def merge(self, other: "Stats") -> None:
        """Absorb ``other``, the stats of other calibration samples."""
        for name, obs in other.observers.items():
            if name in self.observers:
                self.observers[name].merge(obs)
            else:
                self.observers[name] = obs
        for name, total in other.channel_sum.items():
            self.channel_sum.setdefault(name, ExactSum()).merge(total)
            self.channel_count[name] = self.channel_count.get(name, 0) + \
                other.channel_count[name]
        for name, m in other.column_absmax.items():
            old = self.column_absmax.get(name)
            self.column_absmax[name] = m if old is None else np.maximum(old, m)
        self.batches += other.batches


def observed_values(graph: Graph) -> list:
    """The float activations worth observing: inputs and node outputs."""
    vals = []
    for v in graph.values():
        if v.const is None and isinstance(v.type, TensorType) and v.type.dtype.kind == "float":
            vals.append(v)
    return vals


def _chunks(feeds: dict, size: int):
    n = None
    for a in feeds.values():
        a = np.asarray(a)
        if a.ndim:
            n = a.shape[0] if n is None else min(n, a.shape[0])
    if n is None or n <= size:
        yield feeds
        return
    for i in range(0, n, size):
        yield {k: (np.asarray(a)[i:i + size] if np.ndim(a) else a) for k, a in feeds.items()}


def _batch_axis_free(graph: Graph) -> bool:
    return all(isinstance(v.type, TensorType) and v.type.shape and
               not isinstance(v.type.shape[0], int) for v in graph.inputs)


def calibrate(graph: Graph, calibration, method: str = "minmax", progress: bool = True,
              channel_inputs=(), column_inputs=(), fanout=None) -> Stats:
    """Observe every float activation of ``graph`` over the calibration batches.

    ``calibration`` is an iterable of input dicts; ``channel_inputs`` and
    ``column_inputs`` name values whose per-channel mean (axis 1) or per-column ``|x|``
    maximum (last axis) to keep. ``fanout`` (a :class:`npuc.compiler.parallel.Fanout`)
    spreads the batches over worker processes or a Ray cluster; the stats are the same.
    """
    batches = list(calibration) if not hasattr(calibration, "__len__") else calibration
    if len(batches) == 0:
        raise NpucError("the calibration data is empty")
    job = CalibrationJob(graph, batches, method, sorted(channel_inputs), sorted(column_inputs))
    if fanout is not None and fanout.parallel and len(batches) > 1:
        from npuc.compiler.parallel import fan_out, release, share, split_range

        parts = split_range(len(batches), fanout.items_for(len(batches)))
        shared = share(job, fanout)
        try:
            results = fan_out(calibrate_part, parts, fanout, shared=shared,
                              desc="calibrating", weights=[b - a for a, b in parts],
                              progress=progress)
        finally:
            release(shared)
        stats = results[0]
        for part in results[1:]:
            stats.merge(part)
        return stats
    return job.run(range(len(batches)), progress)


@dataclass
class CalibrationJob:
    """Everything a worker needs to calibrate any subset of the batches."""

    graph: Graph
    batches: list
    method: str
    channel_inputs: list
    column_inputs: list

    def run(self, indices, progress: bool = False) -> Stats:
        """The stats of the batches at ``indices``."""
        if progress:  # (tqdm.auto imports asyncio: 80 ms of every quiet compile)
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc="calibrating", unit="batch", leave=False)
        graph = self.graph
        stats = Stats({v.name: make_observer(self.method) for v in observed_values(graph)})
        chunked = _batch_axis_free(graph)
        channels, columns = set(self.channel_inputs), set(self.column_inputs)
        for i in indices:
            feeds = self.batches[i]
            for part in (_chunks(feeds, CHUNK) if chunked else [feeds]):
                observe_run(graph, part, lambda name, x: _observe(stats, name, x, channels,
                                                                  columns))
            stats.batches += 1
        return stats


def observe_run(graph: Graph, feeds: dict, see) -> None:
    """Run the float model on ``feeds`` and call ``see(name, array)`` once for each float
    activation (:func:`observed_values`), as it is made.

    The model runs as onnxruntime runs it (float32 products in blocks fixed by the
    shapes: the same bits on any thread count). Each activation is seen the moment its
    node has made it, so the run drops it after its last use and may overwrite it in
    place, as a plain run does; the values seen are those the graph's outputs would
    have been."""
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.mapped import release_inputs

    watched = {id(v) for v in observed_values(graph)}
    for v in graph.inputs:
        if id(v) in watched and v.name in feeds:
            see(v.name, np.asarray(feeds[v.name]))

    def hook(node, results) -> None:
        release_inputs(node)
        for out, r in zip(node.outputs, results):
            if out is not None and id(out) in watched and r is not None:
                see(out.name, r)

    execute(graph, feeds, products="float32", observe=hook)


def calibrate_part(job: CalibrationJob, part: tuple[int, int]) -> Stats:
    """A worker's share: the stats of batches ``part[0]`` to ``part[1] - 1``."""
    return job.run(range(*part))


def _observe(stats: Stats, name: str, x: np.ndarray, channel_inputs: set,
             column_inputs: set) -> None:
    obs = stats.observers.get(name)
    if obs is None:
        return
    obs.observe(x)
    if name in channel_inputs and x.ndim >= 2:
        axes = tuple(i for i in range(x.ndim) if i != 1)
        # summed in float64 without a float64 copy of x (the same bits, 2-4x faster)
        stats.channel_sum.setdefault(name, ExactSum()).add(
            x.sum(axis=axes, dtype=np.float64))
        stats.channel_count[name] = stats.channel_count.get(name, 0) + \
            x.size // x.shape[1]
    if name in column_inputs and x.ndim >= 1:
        m = np.abs(x).reshape(-1, x.shape[-1]).max(axis=0)
        old = stats.column_absmax.get(name)
        stats.column_absmax[name] = m if old is None else np.maximum(old, m)

"""Calibration: run the float graph on sample inputs and observe every activation.

The float graph is run with every intermediate float tensor as an extra output, one
batch at a time (large batches are cut into chunks so that memory stays bounded), and
each tensor's observer sees it. Besides the ranges, two per-channel statistics are kept
for accuracy recovery: the mean of each Conv/Gemm input channel (bias correction) and
the largest ``|x|`` of each MatMul input column (SmoothQuant).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph
from npuc.ir.types import TensorType

from .observers import Observer, make_observer

CHUNK = 8


@dataclass
class Stats:
    """What calibration saw, by value name."""

    observers: dict[str, Observer] = field(default_factory=dict)
    channel_sum: dict[str, np.ndarray] = field(default_factory=dict)
    channel_count: dict[str, int] = field(default_factory=dict)
    column_absmax: dict[str, np.ndarray] = field(default_factory=dict)
    batches: int = 0

    def channel_mean(self, name: str) -> np.ndarray | None:
        if name not in self.channel_sum:
            return None
        return self.channel_sum[name] / max(self.channel_count[name], 1)


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
              channel_inputs=(), column_inputs=()) -> Stats:
    """Observe every float activation of ``graph`` over the calibration batches.

    ``calibration`` is an iterable of input dicts; ``channel_inputs`` and
    ``column_inputs`` name values whose per-channel mean (axis 1) or per-column ``|x|``
    maximum (last axis) to keep.
    """
    from tqdm.auto import tqdm

    from npuc.compiler.executor.interpreter import execute

    watched = observed_values(graph)
    probe = graph.copy()
    by_name = {v.name: v for v in probe.values()}
    extra = [by_name[v.name] for v in watched if by_name[v.name] not in probe.outputs]
    probe.outputs.extend(extra)
    stats = Stats({v.name: make_observer(method) for v in watched})
    channel_inputs, column_inputs = set(channel_inputs), set(column_inputs)
    batches = list(calibration) if not hasattr(calibration, "__len__") else calibration
    if len(batches) == 0:
        raise NpucError("the calibration data is empty")
    chunked = _batch_axis_free(graph)
    for feeds in tqdm(batches, desc="calibrating", unit="batch", disable=not progress,
                      leave=False):
        for part in (_chunks(feeds, CHUNK) if chunked else [feeds]):
            env = execute(probe, part)
            for name, obs in stats.observers.items():
                x = env.get(name)
                if x is None:
                    continue
                obs.observe(x)
                if name in channel_inputs and x.ndim >= 2:
                    axes = tuple(i for i in range(x.ndim) if i != 1)
                    s = x.astype(np.float64).sum(axis=axes)
                    stats.channel_sum[name] = stats.channel_sum.get(name, 0) + s
                    stats.channel_count[name] = stats.channel_count.get(name, 0) + \
                        x.size // x.shape[1]
                if name in column_inputs and x.ndim >= 1:
                    m = np.abs(x).reshape(-1, x.shape[-1]).max(axis=0)
                    old = stats.column_absmax.get(name)
                    stats.column_absmax[name] = m if old is None else np.maximum(old, m)
            stats.batches += 1
    return stats

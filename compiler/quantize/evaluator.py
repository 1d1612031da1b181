"""The accuracy search's judge: the float model's outputs on the samples, computed once,
and any candidate plan measured against them.

A candidate is given as a plan (:class:`.plan.Plan`), not a graph: with a parallel
fan-out the workers build the candidate from the shared builder and each runs a
contiguous part of the samples, and the parent judges the outputs in sample order. Every
output is computed by the same kernels on the same arrays wherever it runs, so the
verdict, and the search's every choice, are those of one process.

The judge is stricter than ``npuc verify``: a flip of a position counts as a changed
answer once the float model's lead there exceeds :data:`SEARCH_MARGIN`, half verify's
margin (:data:`npuc.compiler.accuracy.MARGIN`). The requirement is met on the calibration
samples only; a plan that keeps even their nearly-undecided positions leaves headroom for
samples it has not seen (on the PP-OCR recognizer at int8 for ATOM: 45 of 48 held-out
lines kept with verify's margin during the search, 48 with half of it). The headroom is
bought with the chip's formats only: before layers move to the host CPU the search judges
with verify's margin (:mod:`.recovery`).
"""

from __future__ import annotations

import numpy as np

from npuc.compiler.accuracy import MARGIN

MAX_ROWS = 128         # samples the requirement is judged on
SEARCH_MARGIN = MARGIN / 2  # decided positions, for headroom on unseen samples
STACK = 32             # rows per run when the model's batch axis is free


class Evaluator:
    """The float model's outputs on the samples, once; then any candidate against them."""

    def __init__(self, float_graph, samples, requirement, rows: int = MAX_ROWS,
                 margin: float = SEARCH_MARGIN):
        from npuc.compiler.executor.interpreter import execute

        self.samples = _limit(samples, rows)
        if _batch_axis_free(float_graph):  # one run for many samples
            self.samples = _stack(self.samples, STACK)
        self.requirement, self.margin = requirement, margin
        self.names = [v.name for v in float_graph.outputs]
        self.refs = [execute(float_graph, s) for s in self.samples]
        self.builder = self.fanout = self._shared = None

    def head(self, rows: int) -> "Evaluator":
        """An evaluator on the first ``rows`` samples (at least: a stacked run is not
        cut), sharing this one's float outputs and binding."""
        new = object.__new__(Evaluator)
        new.__dict__.update(self.__dict__)
        new.samples = _limit(self.samples, rows)
        new.refs = self.refs[:len(new.samples)]
        new._shared = None
        return new

    def with_margin(self, margin: float) -> "Evaluator":
        """This evaluator judging decided positions with ``margin`` instead."""
        new = object.__new__(Evaluator)
        new.__dict__.update(self.__dict__)
        new.margin = margin
        return new

    def __getstate__(self):
        # a worker judges with the float outputs; it neither fans out nor shares
        state = dict(self.__dict__)
        state["fanout"] = state["_shared"] = None
        return state

    def bind(self, builder, fanout=None) -> "Evaluator":
        """Candidates given as plans are built by ``builder`` and, with a parallel
        ``fanout``, run by its workers."""
        self.builder, self.fanout = builder, fanout
        return self

    def measure(self, graph):
        from npuc.compiler.executor.interpreter import execute

        return self.judge([execute(graph, s) for s in self.samples])

    def measure_plan(self, plan):
        """The agreement of the candidate ``plan`` (see :meth:`bind`)."""
        fanout = self.fanout
        if fanout is None or not fanout.parallel or len(self.samples) < 2:
            return self.measure(self.builder.build(plan))
        from npuc.compiler.parallel import fan_out, share, split_range

        if self._shared is None:
            self._shared = share((self.builder, self.samples), fanout)
        # ranges of observers computed since the builder was shared travel with the item
        ranges = {m: self.builder.ranges_for(m, fanout)
                  for m in sorted(set(plan.methods.values()))}
        parts = split_range(len(self.samples), fanout.items_for(len(self.samples)))
        outs = fan_out(run_part, [(plan, ranges, a, b) for a, b in parts], fanout,
                       shared=self._shared, desc="accuracy")
        return self.judge([o for part in outs for o in part])

    def judge(self, outs: list):
        """The agreement of ``outs`` (one output dict per sample) with the float model."""
        from npuc.compiler.accuracy import agreement

        mode = self.requirement.answer_mode if self.requirement else "auto"
        axis = self.requirement.axis if self.requirement else -1
        return agreement(self.refs, outs, mode=mode, axis=axis, outputs=self.names,
                         margin=self.margin)

    def score(self, agreement) -> tuple:
        short = self.requirement.shortfall(agreement) if self.requirement else 0.0
        return (round(short, 9), -round(agreement.min_sqnr_db, 2))


def run_part(job, item) -> list:
    """A worker's share of one measure: the candidate built from the shared builder, run
    on samples ``[a, b)``."""
    from npuc.compiler.executor.interpreter import execute

    builder, samples = job
    plan, ranges, a, b = item
    for method, r in ranges.items():  # the parent's, with every range it computed
        if method != builder.method:
            builder.ranges[method] = r
    graph = builder.build(plan)
    return [execute(graph, s) for s in samples[a:b]]


def _batch_axis_free(graph) -> bool:
    from npuc.ir.types import TensorType

    return all(isinstance(v.type, TensorType) and v.type.shape and
               not isinstance(v.type.shape[0], int) for v in graph.inputs)


def _stack(samples: list, rows: int) -> list:
    """Samples joined along the batch axis into runs of at most ``rows`` rows."""
    out, part, n = [], [], 0
    for s in samples:
        size = min((np.asarray(a).shape[0] for a in s.values() if np.ndim(a)), default=1)
        if part and n + size > rows:
            out.append(part)
            part, n = [], 0
        part.append(s)
        n += size
    if part:
        out.append(part)
    return [{k: np.concatenate([np.asarray(s[k]) for s in p]) for k in p[0]} for p in out]


def _limit(samples, rows: int) -> list:
    out, n = [], 0
    for s in samples:
        if n >= rows:
            break
        out.append(s)
        first = next((np.asarray(a) for a in s.values() if np.ndim(a)), None)
        n += first.shape[0] if first is not None else 1
    return out

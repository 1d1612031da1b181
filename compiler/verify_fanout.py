"""Verification over many samples, fanned out: every sample through the compiled program
(the command-stream simulator), the float reference and the lowered IR.

:func:`run_samples` is the loop a many-sample ``verify`` runs; given a
:class:`npuc.compiler.parallel.Fanout` it cuts the samples into index ranges, shares the
program, its weights, the graph and the samples once (not per task), and returns the
outputs in sample order, the same arrays as one process computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SampleRuns:
    """Per sample, what the program, the reference and the lowered IR output."""

    got: list = field(default_factory=list)
    want: list = field(default_factory=list)
    ir: list = field(default_factory=list)
    reference: str = "onnxruntime"
    notes: list = field(default_factory=list)

    def extend(self, other: "SampleRuns") -> None:
        self.got += other.got
        self.want += other.want
        self.ir += other.ir
        self.reference, self.notes = other.reference, other.notes


@dataclass
class _Reference:
    """The part of a compile result the reference needs: the ONNX model with static
    shapes and as given."""

    proto: object
    source_proto: object = None


@dataclass
class VerifyJob:
    """Everything a worker needs to run any of the samples."""

    model: object
    program: dict
    weights: bytes
    graph: object
    proto: object
    source_proto: object
    samples: list

    def run(self, indices) -> SampleRuns:
        """The outputs of the samples at ``indices``."""
        import numpy as np

        from npuc.compiler.driver import _reference
        from npuc.compiler.executor.interpreter import execute
        from npuc.compiler.executor.simulator import simulate

        out = SampleRuns()
        for i in indices:
            feeds = self.samples[i]
            got = simulate(self.program, self.weights, feeds)
            out.got.append({k: np.asarray(v) for k, v in got.items()})
            ref = _Reference(self.proto, self.source_proto)
            want, out.reference, out.notes = _reference(self.model, ref, feeds)
            out.want.append({k: np.asarray(v) for k, v in want.items()})
            out.ir.append({k: np.asarray(v) for k, v in execute(self.graph, feeds).items()})
        return out


def run_part(job: VerifyJob, part: tuple[int, int]) -> SampleRuns:
    """A worker's share: samples ``part[0]`` to ``part[1] - 1``."""
    return job.run(range(*part))


def run_samples(model, compiled, samples: list[dict], fanout=None,
                progress: bool = False) -> SampleRuns:
    """Run every sample through ``compiled`` (a :class:`CompileResult` of ``model``), the
    reference and the lowered IR; on ``fanout``'s workers when it is parallel."""
    job = VerifyJob(model, compiled.program, compiled.weights, compiled.graph,
                    compiled.proto, getattr(compiled, "source_proto", None), list(samples))
    if fanout is None or not fanout.parallel or len(samples) < 2:
        return job.run(range(len(samples)))
    from npuc.compiler.parallel import fan_out, release, share, split_range

    parts = split_range(len(samples), fanout.items_for(len(samples)))
    shared = share(job, fanout)
    try:
        results = fan_out(run_part, parts, fanout, shared=shared, desc="verifying",
                          weights=[b - a for a, b in parts], progress=progress)
    finally:
        release(shared)
    runs = SampleRuns()
    for r in results:
        runs.extend(r)
    return runs

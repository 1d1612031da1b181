"""``npuc verify --inputs DIR``: the compiled program judged over many samples.

The model is compiled once; every sample runs through the command-stream simulator, the
float reference (onnxruntime on the original model) and the lowered IR (:func:`run_samples`;
given a :class:`npuc.compiler.parallel.Fanout` it cuts the samples into index ranges,
shares the program, its weights, the graph and the samples once, not per task, and returns
the outputs in sample order, the same arrays as one process computes). Per output the
result has the pooled SQNR and cosine against the reference (the precision's tolerance
applies to them, as for one sample), whether the program's outputs are bit-identical to
its graph's on every sample, and the answer agreement of
:func:`npuc.compiler.accuracy.agreement`: how many samples changed their answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SamplesResult:
    """The verification of one compiled program over several samples."""

    passed: bool
    reference: str
    precision: str
    tolerance: dict
    outputs: dict                 # name -> pooled errors and program-vs-IR
    agreement: object             # npuc.compiler.accuracy.Agreement
    requirement: str | None = None
    requirement_met: bool | None = None
    notes: list = field(default_factory=list)
    compiled: object = None

    def to_json(self) -> dict:
        return {"passed": self.passed, "reference": self.reference,
                "precision": self.precision, "tolerance": self.tolerance,
                "outputs": self.outputs, "agreement": self.agreement.to_json(),
                "requirement": self.requirement, "requirement_met": self.requirement_met,
                "notes": self.notes}


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

        from npuc.compiler.executor.interpreter import execute
        from npuc.compiler.executor.simulator import simulate
        from npuc.compiler.verification import reference_outputs

        out = SampleRuns()
        for i in indices:
            feeds = self.samples[i]
            got = simulate(self.program, self.weights, feeds)
            out.got.append({k: np.asarray(v) for k, v in got.items()})
            ref = _Reference(self.proto, self.source_proto)
            want, out.reference, out.notes = reference_outputs(self.model, ref, feeds)
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
                    compiled.proto, compiled.source_proto, list(samples))
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


def verify_samples(model, target, samples: list[dict], opt_level: int = 2,
                   quantize: str = "auto", calibration=None, schedule_in=None,
                   batch: int = 1, output_dir=None, progress: bool = False,
                   mode: str = "auto", axis: int = -1, k: int = 5, blank: int = 0,
                   accuracy=None, preprocess=None, fanout=None,
                   margin=None) -> SamplesResult:
    """Compile ``model`` once and verify it over ``samples`` (input dicts).

    ``fanout`` (a started :class:`npuc.compiler.parallel.Fanout`) runs calibration and the
    samples on several processes or a Ray cluster; the result is the one process's.

    ``mode``, ``axis``, ``k``, ``blank`` and ``margin`` choose the answer compared (see
    :mod:`npuc.compiler.accuracy`); ``accuracy``, a requirement such as ``argmax<=1%``,
    is checked against the agreement and decides the verdict with the tolerance."""
    from npuc.compiler.accuracy import MARGIN, agreement
    from npuc.compiler.driver import TOLERANCE, compare, compile
    from npuc.compiler.executor.diagnose import same_bits
    from npuc.compiler.quantize.requirement import parse_requirement

    requirement = parse_requirement(accuracy)
    compiled = compile(model, target, opt_level, quantize, calibration, output_dir,
                       schedule_in, batch=batch, progress=progress,
                       accuracy="auto" if accuracy is None else str(accuracy),
                       preprocess=preprocess, fanout=fanout)
    runs = run_samples(model, compiled, samples, fanout, progress)
    got, want, ir, notes, reference = runs.got, runs.want, runs.ir, runs.notes, runs.reference
    names = list(want[0]) if want else []
    if requirement is not None and mode == "auto" and requirement.answer_mode != "none":
        mode, axis = requirement.answer_mode, requirement.axis
    bound = answer_bound(compiled.precision, mode, requirement)
    agree = agreement(want, [{n: g[n] for n in names} for g in got], mode=mode, axis=axis,
                      k=k, blank=blank, batch_axis=None, outputs=names,
                      margin=MARGIN if margin is None else margin)
    sqnr_min, cos_min = TOLERANCE[compiled.precision]
    rows, passed = {}, True
    for name in names:
        pooled = compare(np.concatenate([g[name].ravel() for g in got]),
                         np.concatenate([w[name].ravel() for w in want]))
        pooled["program_vs_ir_sqnr_db"] = min(
            compare(g[name], np.asarray(i[name]))["sqnr_db"] for g, i in zip(got, ir))
        pooled["program_vs_ir_identical"] = all(
            g[name].shape == np.shape(i[name]) and same_bits(g[name], np.asarray(i[name])).all()
            for g, i in zip(got, ir))
        a = agree.outputs[name]
        if bound is not None and a.mode != "none":  # the answer is the criterion
            pooled["judged_by"] = "answer"
            checks = (("answer", a.changed > bound * a.samples + 1e-9),)
        else:
            pooled["judged_by"] = "tolerance"
            checks = (("sqnr", not pooled["sqnr_db"] >= sqnr_min),
                      ("cosine", not pooled["cosine"] >= cos_min))
        pooled["failed"] = [c for c, bad in (
            *checks, ("program_vs_ir", not pooled["program_vs_ir_identical"])) if bad]
        pooled["passed"] = not pooled["failed"]
        passed &= pooled["passed"]
        rows[name] = pooled
    met = requirement.met(agree) if requirement is not None else None
    if met is False:
        passed = False
    return SamplesResult(passed, reference, compiled.precision,
                         {"sqnr_db_min": sqnr_min, "cosine_min": cos_min,
                          "program_vs_ir": "identical"}, rows, agree,
                         str(requirement) if requirement is not None else None, met, notes,
                         compiled)


CALIBRATED = ("int8", "fp8", "int4")


def answer_bound(precision: str, mode: str, requirement) -> float | None:
    """The share of samples an output may change its answer by when its answer, not its
    SQNR, decides the verdict: at a calibrated precision (int8, fp8, int4), once the
    answer is named (``--agree argmax|ctc`` or an answer term of ``--accuracy``). The
    requirement's bound, else 1%. None: the precision's SQNR and cosine tolerance
    decide, as for one sample."""
    from npuc.compiler.quantize.requirement import ANSWERS

    named = mode in ("argmax", "ctc") or (
        requirement is not None and requirement.answer_mode != "none")
    if precision not in CALIBRATED or not named:
        return None
    if requirement is not None:
        for t in requirement.terms:
            if t.measure in ANSWERS:
                return t.value
    return 0.01


def format_samples_result(r: SamplesResult) -> list[str]:
    """The lines ``npuc verify`` prints for a :class:`SamplesResult`."""
    tol = r.tolerance
    lines = [f"note: {n}" for n in r.notes]
    lines.append(f"reference: {r.reference}; precision {r.precision}: needs SQNR >= "
                 f"{tol['sqnr_db_min']} dB and cosine >= {tol['cosine_min']} over "
                 f"{r.agreement.samples} samples")
    for name, m in r.outputs.items():
        a = r.agreement.outputs[name]
        answer = ""
        if a.mode != "none":
            answer = f", {a.mode} changed on {a.changed} of {a.samples}"
            if a.positions is not None:
                answer += f", positions agree {a.positions:.2%}"
            if a.topk is not None:
                answer += f", top-k overlap {a.topk:.2%}"
        ir = "identical" if m["program_vs_ir_identical"] else \
            f"differs, {m['program_vs_ir_sqnr_db']:.1f} dB"
        by = " (judged by its answer)" if m.get("judged_by") == "answer" else ""
        lines.append(f"  {name}{by}: SQNR {m['sqnr_db']:.2f} dB (worst sample "
                     f"{a.sqnr_db_min:.2f}), cosine {m['cosine']:.6f}{answer}, program vs IR "
                     f"{ir} -> {'ok' if m['passed'] else 'FAIL (' + ', '.join(m['failed']) + ')'}")
    lines.append(f"answers: {r.agreement.summary()}")
    if r.requirement is not None:
        lines.append(f"requirement {r.requirement}: {'met' if r.requirement_met else 'NOT met'}")
    lines.append("verify: passed" if r.passed else "verify: FAILED")
    return lines

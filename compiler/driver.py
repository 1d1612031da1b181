"""The compiler driver: ``npuc.compile`` and ``npuc.verify``.

:func:`compile` reads top to bottom as the pipeline it runs::

    load (static shapes) -> optimize -> quantize -> schedule -> lower -> summarize -> write

Optimization and quantization are called through ``npuc.optimize`` and ``npuc.quantize``;
when either is not available in this build, the driver says so in the decision log and
goes on (constant folding only; float32 execution, estimated at the chip's precision).
The output folder is written whole or not at all: into a temporary folder beside it,
then renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.errors import NpucError

QUANTIZE_CHOICES = ("auto", "int8", "fp8", "bf16", "fp16", "none")

# Verification tolerance per precision the program computes in: (minimum SQNR in dB,
# minimum cosine similarity). See docs/compile.md for where they come from.
TOLERANCE = {"fp32": (60.0, 0.99999), "fp16": (35.0, 0.999), "bf16": (25.0, 0.995),
             "fp8": (12.0, 0.97), "int8": (12.0, 0.97), "int4": (6.0, 0.9)}


@dataclass
class CompileResult:
    """What :func:`compile` made: the program, its weights, the schedule and the summary."""

    target: object
    graph: object
    schedule: object
    program: dict
    weights: bytes
    summary: dict
    precision: str           # what the program computes in ("fp32" when not quantized)
    estimate_precision: str  # what the estimates assume
    proto: object = None     # the ONNX model with static shapes, when there is one
    output_dir: str | None = None
    files: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)  # time per pipeline step (not in artifacts)

    @property
    def estimated_latency_s(self) -> float:
        return self.summary["estimated_latency_s"]


@dataclass
class VerifyResult:
    """Per-output errors of the simulated program against a reference, and against the
    IR it was lowered from."""

    passed: bool
    reference: str
    precision: str
    tolerance: dict
    outputs: dict            # name -> {max_abs_error, sqnr_db, cosine, ..., failed, passed}
    notes: list = field(default_factory=list)
    compiled: CompileResult | None = None
    first_difference: object = None  # executor.diagnose.Difference when program != IR

    @property
    def criteria(self) -> list[str]:
        """Every criterion applied, in words, with its bound."""
        tol = self.tolerance
        return [f"SQNR against {self.reference} >= {tol['sqnr_db_min']} dB ({self.precision})",
                f"cosine against {self.reference} >= {tol['cosine_min']} ({self.precision})",
                "program identical to the IR it was lowered from (bit for bit)"]

    def to_json(self) -> dict:
        return {"passed": self.passed, "reference": self.reference, "precision": self.precision,
                "tolerance": self.tolerance, "criteria": self.criteria,
                "outputs": self.outputs, "notes": self.notes,
                "first_difference": (self.first_difference.to_json()
                                     if self.first_difference is not None else None)}


def judge(precision: str, expected: dict, lowered: dict, got: dict) -> tuple[dict, bool]:
    """Per-output measures and verdicts of the program's outputs ``got``: against the
    reference's ``expected`` at the precision's tolerance, and against the IR's
    ``lowered`` bit for bit. Each row lists the criteria it failed."""
    from npuc.compiler.executor.diagnose import same_bits

    sqnr_min, cos_min = TOLERANCE[precision]
    rows, passed = {}, True
    for name, want in expected.items():
        program = np.asarray(got[name])
        m = compare(program, np.asarray(want))
        ir = np.asarray(lowered[name])
        m["program_vs_ir_sqnr_db"] = compare(program, ir)["sqnr_db"]
        m["program_vs_ir_identical"] = bool(program.shape == ir.shape and
                                            same_bits(program, ir).all())
        failed = []
        if not m["sqnr_db"] >= sqnr_min:
            failed.append("sqnr")
        if not m["cosine"] >= cos_min:
            failed.append("cosine")
        if not m["program_vs_ir_identical"]:
            failed.append("program_vs_ir")
        m["failed"] = failed
        m["passed"] = not failed
        passed &= m["passed"]
        rows[name] = m
    return rows, passed


def compile(model, target, opt_level: int = 2, quantize: str = "auto", calibration=None,
            output_dir: str | None = None, schedule_in: str | None = None,
            schedule_out: str | None = None, batch: int = 1, progress: bool = False,
            accuracy: str | None = "auto", preprocess: str | None = None,
            layers: dict | None = None) -> CompileResult:
    """Compile ``model`` (a path, ``zoo:NAME`` or ModelProto) for ``target``.

    ``accuracy``: the requirement the quantization recovery meets on the calibration
    samples (``"argmax<=1%"``, ``"sqnr>=30"``, ``"off"``; ``"auto"``: the default
    requirement when real calibration data is given). ``preprocess``: how calibration
    images become inputs (see :mod:`npuc.compiler.samples`). ``layers``: node name ->
    scheme, for mixed precision (see :mod:`npuc.compiler.quantize.plan`)."""
    from npuc.compiler.lower import lower
    from npuc.compiler.report import summarize, write_report
    from npuc.compiler.schedule import schedule
    from npuc.compiler.schedule.prepare import load_static
    from npuc.compiler.schedule.schedule_file import check_pins, dumps, read_pins

    target = _target(target)
    precision = _requested_precision(target, quantize)
    steps = _Progress(progress, 6)
    steps.next("load")
    graph, proto = load_static(model, batch)
    steps.next("optimize")
    graph = _optimize(graph, opt_level)
    steps.next("quantize")
    graph, computed = _quantize(graph, target, precision, calibration, progress,
                                (accuracy, preprocess, batch, layers))
    estimate_at = computed if computed != "fp32" else _estimate_precision(target, precision)
    steps.next("schedule")
    pins = read_pins(schedule_in, target.name) if schedule_in else None
    if pins:
        check_pins(pins, graph)
    sched = schedule(graph, target, estimate_at, pins)
    steps.next("lower")
    program, weights = lower(graph, sched, target)
    steps.next("write")
    summary = summarize(graph, sched, program, target, model, computed, estimate_at)
    result = CompileResult(target, graph, sched, program, weights, summary, computed,
                           estimate_at, proto)
    files = {
        "program.json": _json(program),
        "weights.bin": weights,
        "schedule.json": dumps(sched),
        "summary.json": _json(summary),
        "decisions.json": log_of(graph).dumps() + "\n",
    }
    files["report.html"] = write_report(summary, json.loads(files["decisions.json"]))
    if output_dir is not None:
        _write_dir(output_dir, files)
        result.output_dir = output_dir
    if schedule_out is not None:
        _write_file(schedule_out, files["schedule.json"])
    result.files = files
    steps.close()
    result.seconds = steps.seconds
    return result


def verify(model, target, opt_level: int = 2, quantize: str = "auto", calibration=None,
           inputs: dict | None = None, schedule_in: str | None = None, batch: int = 1,
           output_dir: str | None = None, progress: bool = False) -> VerifyResult:
    """Compile, simulate the program, and compare with onnxruntime on the original model
    (npuc's own float execution when onnxruntime is not installed, and said so)."""
    from npuc.compiler.executor.diagnose import first_difference
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.executor.simulator import simulate

    compiled = compile(model, target, opt_level, quantize, calibration, output_dir,
                       schedule_in, batch=batch, progress=progress)
    feeds = inputs if inputs is not None else _sample_inputs(model, compiled)
    got = simulate(compiled.program, compiled.weights, feeds)
    expected, reference, notes = _reference(model, compiled, feeds)
    # the program must compute what the graph it was lowered from computes, tile by tile
    lowered = execute(compiled.graph, feeds)
    rows, passed = judge(compiled.precision, expected, lowered, got)
    diff = None
    if not all(m["program_vs_ir_identical"] for m in rows.values()):
        diff = first_difference(compiled.graph, compiled.program, compiled.weights, feeds)
    sqnr_min, cos_min = TOLERANCE[compiled.precision]
    return VerifyResult(passed, reference, compiled.precision,
                        {"sqnr_db_min": sqnr_min, "cosine_min": cos_min,
                         "program_vs_ir": "identical"}, rows, notes, compiled, diff)


def compare(got: np.ndarray, want: np.ndarray) -> dict:
    """Max absolute error, SQNR (dB) and cosine similarity of ``got`` against ``want``."""
    if got.shape != want.shape:
        raise NpucError(f"output shape {list(got.shape)} differs from the reference "
                        f"{list(want.shape)}")
    g, w = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    noise = float(np.sum((g - w) ** 2))
    signal = float(np.sum(w ** 2))
    sqnr = 200.0 if noise == 0 else (10 * np.log10(signal / noise) if signal > 0 else -200.0)
    denom = float(np.linalg.norm(g) * np.linalg.norm(w))
    cosine = 1.0 if denom == 0 and noise == 0 else (float(g @ w) / denom if denom else 0.0)
    return {"max_abs_error": float(np.max(np.abs(g - w))) if g.size else 0.0,
            "sqnr_db": float(min(sqnr, 200.0)), "cosine": cosine}


# -- the steps ---------------------------------------------------------------------------

def _target(target):
    from npuc.targets import get_target
    from npuc.targets.model import Target

    return target if isinstance(target, Target) else get_target(target)


def _requested_precision(target, quantize: str) -> str:
    if quantize not in QUANTIZE_CHOICES:
        raise NpucError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not "
                        f"{quantize!r}")
    if quantize == "auto":
        return target.quant.preferred
    if quantize != "none" and quantize not in target.quant.dtypes:
        raise NpucError(f"{target.name} computes in {', '.join(target.quant.dtypes)}; "
                        f"--quantize {quantize} is not possible on it")
    return quantize


def _estimate_precision(target, precision: str) -> str:
    if precision != "none" and target.peak_ops(precision) is not None:
        return precision
    return "fp32" if target.peak_ops("fp32") is not None else target.quant.preferred


def _optimize(graph, level: int):
    from npuc.compiler.schedule.prepare import fold_constants

    try:
        from npuc.compiler.passes import optimize
    except ImportError:
        optimize = None
    if optimize is None:
        folded = fold_constants(graph)
        log_of(graph).record("optimize", graph.name, "constant folding only",
                             f"npuc's optimizer is not available in this build; {folded} "
                             "constant nodes were folded")
        return graph
    result = optimize(graph, level=level)
    graph = result if result is not None and hasattr(result, "nodes") else graph
    fold_constants(graph)
    return graph


def _quantize(graph, target, precision: str, calibration, progress: bool = False,
              wanted=("auto", None, 1, None)):
    """``(graph, precision it computes in)``; ``wanted``: (accuracy, preprocess, batch,
    layers)."""
    from npuc.compiler.schedule.costview import graph_precision

    log = log_of(graph)
    if precision in ("none", "fp32"):
        log.record("quantize", graph.name, "not quantized", "--quantize none: the program "
                   "computes in float32")
        return graph, "fp32"
    try:
        from npuc.compiler.quantize import quantize
    except ImportError:
        quantize = None
    if quantize is None:
        log.record("quantize", graph.name, "not quantized",
                   f"npuc's quantizer is not available in this build; the program computes "
                   f"in float32 and its cost is estimated at {precision}")
        return graph, "fp32"
    samples = _calibration(graph, calibration, target, precision, *wanted[1:3])
    import warnings

    accuracy = _accuracy(graph, wanted[0], calibration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the decision log says it, once
        result = quantize(graph, target=target, calibration=samples, precision=precision,
                          progress=progress, accuracy=accuracy, layers=wanted[3])
    graph = result if result is not None and hasattr(result, "nodes") else graph
    scheme = graph.meta.get("quantize", {}).get("scheme")
    return graph, getattr(scheme, "precision", None) or graph_precision(graph) or "fp32"


def _calibration(graph, calibration, target, precision, preprocess=None, batch: int = 1):
    """Calibration inputs (see :func:`npuc.compiler.samples.load_samples`), in batches of
    ``batch``; with none given, random inputs, said on the terminal and in the log."""
    from npuc.compiler.executor.inputs import random_inputs
    from npuc.compiler.samples import group_batches, load_samples, warn

    if calibration is None:
        if target.quant.needs_calibration(precision):
            log_of(graph).record("quantize", graph.name, "random calibration",
                                 "no calibration data given: 8 random input sets are used; "
                                 "give --calibration for real accuracy")
            warn(f"no calibration data: {precision} ranges come from 8 RANDOM input sets, "
                 "which are not your data; give --calibration")
            return [random_inputs(graph, seed=i) for i in range(8)]
        return None
    return group_batches(load_samples(calibration, graph, preprocess), batch)


def _accuracy(graph, accuracy, calibration):
    """The requirement for the recovery: ``auto`` is the default one when real
    calibration data is given (random inputs say nothing about the answer)."""
    from npuc.compiler.quantize.requirement import DEFAULT

    if accuracy != "auto":
        return accuracy
    if calibration is None or (isinstance(calibration, str) and
                               calibration.startswith("random:")):
        log_of(graph).record("accuracy", graph.name, "not checked",
                             "no real calibration samples to judge the answer on")
        return None
    return DEFAULT


def _sample_inputs(model, compiled) -> dict:
    from npuc.compiler.executor.inputs import random_inputs

    if isinstance(model, str) and model.startswith("zoo:") and compiled.proto is not None:
        from npuc import zoo

        return zoo.sample_inputs(compiled.proto, batch=1, seed=0)
    return random_inputs(compiled.graph, seed=0)


def _reference(model, compiled, feeds) -> tuple[dict, str, list]:
    notes = []
    if compiled.proto is not None:
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
            notes.append("onnxruntime is not installed: compared with npuc's float execution "
                         "instead")
        if ort is not None:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 2
            opts.log_severity_level = 3
            session = ort.InferenceSession(compiled.proto.SerializeToString(), opts,
                                           providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            outs = session.run(names, feeds)
            return dict(zip(names, outs)), "onnxruntime", notes
    else:
        notes.append("the model is not ONNX: compared with npuc's float execution")
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.schedule.prepare import load_static

    graph, _ = load_static(model, 1)
    return execute(graph, feeds), "npuc float execution", notes


# -- output ------------------------------------------------------------------------------

def _json(data) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _write_dir(path: str, files: dict) -> None:
    """Write ``files`` into folder ``path``, all or nothing (temp folder, then rename).

    Missing parent folders are created, as ``mkdir -p`` would."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise NpucError(f"{path}: cannot create the folder {parent}: {e.strerror}") from None
    if os.path.exists(path) and not os.path.isdir(path):
        raise NpucError(f"{path}: exists and is not a folder")
    tmp = tempfile.mkdtemp(prefix=".npuc-", dir=parent)
    try:
        for name, data in sorted(files.items()):
            mode = "wb" if isinstance(data, bytes) else "w"
            with open(os.path.join(tmp, name), mode, **({} if mode == "wb" else
                                                          {"encoding": "utf-8"})) as f:
                f.write(data)
        if os.path.isdir(path):
            old = path + ".old-npuc"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_file(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise NpucError(f"{path}: the folder {folder} does not exist")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class _Progress:
    """A tqdm bar over the pipeline's steps (silent unless asked for)."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="compile", unit="step", leave=False,
                            bar_format="{desc}: {n}/{total} {bar} [{elapsed}]")
        self.started = False
        self.seconds: dict[str, float] = {}
        self._clock = None

    def next(self, name: str) -> None:
        import time

        now = time.perf_counter()
        if self._clock is not None:
            self.seconds[self._clock[0]] = now - self._clock[1]
        self._clock = (name, now)
        if self.bar is not None:
            if self.started:
                self.bar.update(1)
            self.started = True
            self.bar.set_description(f"compile: {name}")

    def close(self) -> None:
        self.next("")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.close()

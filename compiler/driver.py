"""The compiler driver: ``npuc.compile`` (``npuc.verify`` is in :mod:`.verification`).

:func:`compile` reads top to bottom as the pipeline it runs::

    load (static shapes) -> optimize -> legalize for the chip -> quantize -> schedule
        -> lower -> summarize -> write

Optimization and quantization are ``npuc.optimize`` and ``npuc.quantize``. The output
folder is written whole or not at all, through :mod:`npuc.ir.safeio`; it and
``--schedule-out`` are checked before any work is done.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from npuc.compiler.verification import (  # noqa: F401  (re-exported: npuc.verify and callers)
    TOLERANCE,
    VerifyResult,
    _reference,
    _sample_inputs,
    check_program,
    compare,
    judge,
    verify,
)
from npuc.ir.decisions import log_of
from npuc.ir.errors import NpucError

QUANTIZE_CHOICES = ("auto", "int8", "fp8", "bf16", "fp16", "none")



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
    source_proto: object = None  # the ONNX model as given (symbolic shapes kept)
    output_dir: str | None = None
    files: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)  # time per pipeline step (not in artifacts)

    @property
    def estimated_latency_s(self) -> float:
        return self.summary["estimated_latency_s"]


def warnings_of(graph) -> list[str]:
    """The one-line warnings a command prints for ``graph``'s numeric hazards."""
    return [f"npuc: warning: {d.data.get('kind', 'hazard')} at {d.subject}: {d.reason}"
            for d in log_of(graph) if d.action == "hazard"]


def compile(model, target, opt_level: int = 2, quantize: str = "auto", calibration=None,
            output_dir: str | None = None, schedule_in: str | None = None,
            schedule_out: str | None = None, batch: int = 1, progress: bool = False,
            shapes=None, input_shapes: dict | None = None, keep_reference: bool = True,
            fanout=None, accuracy: str | None = "auto", preprocess: str | None = None,
            layers: dict | None = None, max_seq: int | None = None,
            last_logits: bool = False):
    """Compile ``model`` (a path, ``zoo:NAME`` or ModelProto) for ``target``: a
    :class:`CompileResult` (a :class:`~npuc.compiler.bucketed.BucketsResult` when
    ``shapes`` asks for several shape sets).

    ``shapes`` (``--shape`` specs or a :class:`ShapeSet`) and ``input_shapes`` (the shapes
    of inputs the user has) give the symbolic dimensions their values; see
    :mod:`npuc.compiler.schedule.shapes`. ``keep_reference=False`` lets the ONNX model go
    once it is imported (``proto`` is then None): verification needs it, a compile alone
    does not, and for a large model it is as large as all its float32 weights. ``fanout``
    (a :class:`npuc.compiler.parallel.Fanout`) spreads calibration over worker processes or
    Ray; the result is the same. ``accuracy``: the requirement the quantization recovery
    meets on the calibration samples (``"argmax<=1%"``, ``"sqnr>=30"``, ``"off"``;
    ``"auto"``: the default requirement when real calibration data is given).
    ``preprocess``: how calibration images become inputs (see :mod:`npuc.compiler.samples`).
    ``layers``: node name -> scheme, for mixed precision (see
    :mod:`npuc.compiler.quantize.plan`). ``max_seq``: a decoder's KV cache becomes device
    state of that many positions, written in place (see
    :mod:`npuc.compiler.schedule.kvcache`); ``last_logits``: the logits of the last token
    only (a prefill's)."""
    from npuc.compiler.schedule.shapes import parse_shapes
    from npuc.ir.safeio import check_output_dir, check_output_file, write_dir, write_file

    if len(parse_shapes(shapes)) > 1:
        from npuc.compiler.bucketed import compile_buckets

        if schedule_in is not None or schedule_out is not None:
            raise NpucError("a schedule file pins one program; give --schedule-in or "
                            "--schedule-out with one shape set, not several")
        return compile_buckets(model, target, parse_shapes(shapes), opt_level=opt_level,
                               quantize=quantize, calibration=calibration,
                               output_dir=output_dir, batch=batch, progress=progress,
                               keep_reference=keep_reference, fanout=fanout,
                               max_seq=max_seq, last_logits=last_logits)
    if output_dir is not None:  # refused before any work, never after
        check_output_dir(output_dir, protect=_inputs_of(model, calibration, schedule_in))
    if schedule_out is not None:
        check_output_file(schedule_out)
    target = _target(target)
    precision = _requested_precision(target, quantize)
    with _naming(model, calibration, schedule_in):
        result = _pipeline(model, target, precision, opt_level, calibration, schedule_in,
                           batch, progress, quantize == "auto", shapes, input_shapes,
                           keep_reference, fanout, (accuracy, preprocess, batch, layers),
                           (max_seq, last_logits))
    if output_dir is not None:
        write_dir(output_dir, result.files, protect=_inputs_of(model, calibration, schedule_in))
        result.output_dir = output_dir
    if schedule_out is not None:
        write_file(schedule_out, result.files["schedule.json"])
    return result


def _pipeline(model, target, precision, opt_level, calibration, schedule_in, batch,
              progress, auto_precision=False, shapes=None, input_shapes=None,
              keep_reference=True, fanout=None, wanted=("auto", None, 1, None),
              decoder=(None, False)) -> CompileResult:
    """load -> optimize -> quantize -> (decoder cache) -> schedule -> lower -> summarize;
    ``wanted``: (accuracy, preprocess, batch, layers) for the quantizer; ``decoder``:
    (max_seq, last_logits)."""
    from npuc.compiler.lower import lower
    from npuc.compiler.quantize.hazards import check_weights
    from npuc.compiler.report import summarize, write_report
    from npuc.compiler.schedule import schedule
    from npuc.compiler.schedule.kvcache import add_state
    from npuc.compiler.schedule.legalize import legalize
    from npuc.compiler.schedule.prepare import load_static
    from npuc.compiler.schedule.schedule_file import check_pins, dumps, read_pins

    steps = _Progress(progress, 6)
    steps.next("load")
    graph, proto = load_static(model, batch, _one_shape_set(shapes),
                               input_shapes or _calibration_shapes(calibration, batch),
                               reference=keep_reference)
    source = graph.meta.pop("source_proto", proto)
    if not keep_reference:
        proto = source = None
    check_weights(graph, model if isinstance(model, str) else None)
    prequantized = _prepare_contrib(graph)
    if prequantized is not None and auto_precision and "int8" in target.quant.dtypes:
        precision = "int8"  # the model's own int8 quantization, where the chip has int8
    steps.next("optimize")
    graph = _optimize(graph, opt_level)
    legalize(graph, target)
    steps.next("quantize")
    graph, computed = _quantize(graph, target, precision, calibration, progress,
                                prequantized, fanout, wanted)
    estimate_at = computed if computed != "fp32" else _estimate_precision(target, precision)
    _decoder_forms(graph, *decoder)
    steps.next("schedule")
    pins = read_pins(schedule_in, target.name) if schedule_in else None
    try:
        if pins:
            check_pins(pins, graph)
        sched = schedule(graph, target, estimate_at, pins)
    except NpucError as e:  # a pin's mistake is the schedule file's: name the file
        if schedule_in and str(e).startswith("schedule file: "):
            raise type(e)(f"{schedule_in}: {str(e)[len('schedule file: '):]}") from None
        raise
    steps.next("lower")
    program, weights = lower(graph, sched, target)
    program = add_state(program, graph)
    steps.next("write")
    summary = summarize(graph, sched, program, target, model, computed, estimate_at)
    if "state" in program:
        summary["kv_cache_bytes"] = program["state"]["bytes"]
        summary["max_seq"] = program["state"]["max_seq"]
    result = CompileResult(target, graph, sched, program, weights, summary, computed,
                           estimate_at, proto, source)
    files = {
        "program.json": _json(program),
        "weights.bin": weights,
        "schedule.json": dumps(sched),
        "summary.json": _json(summary),
        "decisions.json": log_of(graph).dumps() + "\n",
    }
    files["report.html"] = write_report(summary, json.loads(files["decisions.json"]))
    result.files = files
    steps.close()
    result.seconds = steps.seconds
    return result


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
    from npuc.compiler.passes import optimize
    from npuc.compiler.schedule.prepare import fold_constants

    graph = optimize(graph, level=level)
    fold_constants(graph)
    return graph


def _decoder_forms(graph, max_seq, last_logits) -> None:
    """The KV cache as device state (``max_seq``) and the last token's logits only, after
    quantization (calibration runs the model as it was exported)."""
    if last_logits:
        from npuc.compiler.passes.last_token import keep_last_token

        keep_last_token(graph)
    if max_seq is not None:
        from npuc.compiler.schedule.kvcache import attach_cache

        attach_cache(graph, max_seq)


def _prepare_contrib(graph):
    """onnxruntime's contrib operators rewritten (at every -O level), and a pre-quantized
    model's own parameters taken out of its Q/DQ pairs (None when it has none)."""
    from npuc.compiler.passes.contrib_expand import expand_contrib
    from npuc.compiler.quantize.prequantized import is_prequantized, take_parameters

    expand_contrib(graph)
    if not is_prequantized(graph):
        return None
    graph.meta["prequantized"] = True
    return take_parameters(graph)


def _quantize(graph, target, precision: str, calibration, progress: bool = False,
              prequantized=None, fanout=None, wanted=("auto", None, 1, None)):
    """``(graph, precision it computes in)``; ``wanted``: (accuracy, preprocess, batch,
    layers)."""
    from npuc.compiler.schedule.costview import graph_precision

    log = log_of(graph)
    if prequantized is not None:
        from npuc.compiler.quantize.prequantized import quantize_prequantized, why_not_used

        if precision == "int8" and calibration is None:
            return quantize_prequantized(graph, target, prequantized), "int8"
        log.record("quantize", graph.name, "model parameters not used",
                   why_not_used(target, precision, calibration))
    if precision in ("none", "fp32"):
        log.record("quantize", graph.name, "not quantized", "--quantize none: the program "
                   "computes in float32")
        return graph, "fp32"
    from npuc.compiler.quantize import quantize

    samples = _calibration(graph, calibration, target, precision, *wanted[1:3])
    import warnings

    accuracy = _accuracy(graph, wanted[0], calibration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the decision log says it, once
        try:
            graph = quantize(graph, target=target, calibration=samples,
                              precision=precision, progress=progress, fanout=fanout,
                              accuracy=accuracy, layers=wanted[3])
        except NpucError as e:
            if calibration is not None:
                raise
            raise NpucError(f"calibrating on random inputs: {e}; give inputs the model "
                            "accepts with --calibration") from None
    # the float graph kept for layer reports holds a float32 copy of every weight; the
    # compile pipeline does not read it, and a large model cannot afford it
    graph.meta.get("quantize", {}).pop("float_graph", None)
    scheme = graph.meta.get("quantize", {}).get("scheme")
    return graph, getattr(scheme, "precision", None) or graph_precision(graph) or "fp32"


def _one_shape_set(shapes):
    from npuc.compiler.schedule.shapes import parse_shapes

    sets = parse_shapes(shapes)
    if len(sets) > 1:
        raise NpucError(f"--shape asks for {len(sets)} shape sets; a program has one "
                        "(compile several with an output folder)")
    return sets[0]


def _calibration_shapes(calibration, batch: int = 1) -> dict | None:
    """The input shapes of the first calibration sample, when the user gave samples."""
    from npuc.compiler.executor.inputs import load_inputs

    if isinstance(calibration, (list, tuple)) and calibration:
        return {k: np.shape(v) for k, v in calibration[0].items()}
    if not isinstance(calibration, (str, os.PathLike)) or \
            os.fspath(calibration).startswith("random:"):
        return None
    path = os.fspath(calibration)
    if os.path.isdir(path):
        names = sorted(f for f in os.listdir(path) if f.endswith(".npz"))
        path = os.path.join(path, names[0]) if names else None
    if path is None or not os.path.isfile(path):
        return None
    # a file's leading axis holds samples (split into batches of --batch): the other axes
    # are the model's
    return {k: (batch,) + np.shape(v)[1:] if np.ndim(v) else np.shape(v)
            for k, v in load_inputs(path).items()}


def _calibration(graph, calibration, target, precision, preprocess=None, batch: int = 1):
    """Calibration inputs (see :func:`npuc.compiler.samples.load_samples`), in batches of
    ``batch``; with none given, random inputs, said on the terminal and in the log."""
    from npuc.compiler.executor.inputs import check_sets, random_inputs
    from npuc.compiler.quantize.api import check_finite_samples
    from npuc.compiler.samples import group_batches, load_samples, warn

    if calibration is None:
        if target.quant.needs_calibration(precision):
            log_of(graph).record("quantize", graph.name, "random calibration",
                                 "no calibration data given: 8 random input sets are used; "
                                 "give --calibration for real accuracy")
            warn(f"no calibration data: {precision} ranges come from 8 RANDOM input sets, "
                 "which are not your data; give --calibration")
            check_sets(8, graph, "random calibration")
            return [random_inputs(graph, seed=i) for i in range(8)]
        return None
    samples = load_samples(calibration, graph, preprocess)
    if not (isinstance(calibration, str) and calibration.startswith("random:")):
        check_finite_samples(samples, "--calibration" if isinstance(calibration, (list, tuple))
                             else os.fspath(calibration))
    return group_batches(samples, batch)


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


# -- output ------------------------------------------------------------------------------

@contextmanager
def _naming(model, *others):
    """Errors about the model start with the file the user gave, not the graph's name
    (errors about the other files given already start with theirs)."""
    try:
        yield
    except NpucError as e:
        name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
        text = str(e)
        known = [name, "--"] + [os.fspath(o) for o in others if isinstance(o, (str, os.PathLike))]
        if name and not any(text.startswith(k) for k in known if k):
            raise type(e)(f"{name}: {text}") from None
        raise


def _inputs_of(*specs) -> list:
    """The files among the user's inputs, which an output folder must never hold."""
    return [s for s in specs if isinstance(s, (str, os.PathLike))
            and not os.fspath(s).startswith(("zoo:", "random:"))]


def _json(data) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


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

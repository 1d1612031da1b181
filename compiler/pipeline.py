"""The compile pipeline for one program: ``npuc.compile`` for one shape set.

:func:`compile_one` reads top to bottom as the pipeline it runs::

    load (static shapes) -> optimize -> legalize for the chip -> quantize -> schedule
        -> lower -> summarize -> write

Optimization and quantization are ``npuc.optimize`` and ``npuc.quantize`` (the quantize
step, with its calibration inputs, is :mod:`.quantize_step`). The output folder is written
whole or not at all, through :mod:`npuc.ir.safeio`; it and ``--schedule-out`` are checked
before any work is done. :mod:`.driver` chooses between one program and several
(:mod:`.bucketed`).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field

from npuc.compiler.quantize_step import calibration_shapes, prepare_contrib, quantize_step
from npuc.ir.decisions import log_of
from npuc.ir.errors import NpucError

QUANTIZE_CHOICES = ("auto", "int8", "fp8", "bf16", "fp16", "none")


@dataclass
class CompileResult:
    """What :func:`compile_one` made: the program, its weights, the schedule and the summary."""

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


def compile_one(model, target, opt_level: int = 2, quantize: str = "auto", calibration=None,
            output_dir: str | None = None, schedule_in: str | None = None,
            schedule_out: str | None = None, batch: int = 1, progress: bool = False,
            shapes=None, input_shapes: dict | None = None, keep_reference: bool = True,
            fanout=None, accuracy: str | None = "auto", preprocess: str | None = None,
            layers: dict | None = None, max_seq: int | None = None,
            last_logits: bool = False, cache_rows: int | None = None,
            cache_scales: dict | None = None) -> CompileResult:
    """One program for ``model`` on ``target`` (one shape set): see
    :func:`npuc.compiler.driver.compile`, which takes the same options."""
    from npuc.ir.safeio import check_output_dir, check_output_file, write_dir, write_file

    if output_dir is not None:  # refused before any work, never after
        check_output_dir(output_dir, protect=inputs_of(model, calibration, schedule_in))
    if schedule_out is not None:
        check_output_file(schedule_out)
    target = target_of(target)
    precision = requested_precision(target, quantize)
    with _naming(model, calibration, schedule_in):
        result = _pipeline(model, target, precision, opt_level, calibration, schedule_in,
                           batch, progress, quantize == "auto", shapes, input_shapes,
                           keep_reference, fanout, (accuracy, preprocess, batch, layers),
                           (max_seq, last_logits, cache_rows, cache_scales))
    if output_dir is not None:
        write_dir(output_dir, result.files, protect=inputs_of(model, calibration, schedule_in))
        result.output_dir = output_dir
    if schedule_out is not None:
        write_file(schedule_out, result.files["schedule.json"])
    return result


def _pipeline(model, target, precision, opt_level, calibration, schedule_in, batch,
              progress, auto_precision=False, shapes=None, input_shapes=None,
              keep_reference=True, fanout=None, wanted=("auto", None, 1, None),
              decoder=(None, False, None, None)) -> CompileResult:
    """load -> optimize -> quantize -> (decoder cache) -> schedule -> lower -> summarize;
    ``wanted``: (accuracy, preprocess, batch, layers) for the quantizer; ``decoder``:
    (max_seq, last_logits, cache_rows, cache_scales)."""
    from npuc.compiler.lower import lower
    from npuc.compiler.quantize.hazards import check_weights
    from npuc.compiler.report import summarize, write_report
    from npuc.compiler.schedule import schedule
    from npuc.compiler.schedule.kvcache_state import add_state
    from npuc.compiler.schedule.legalize import legalize
    from npuc.compiler.schedule.prepare import load_static
    from npuc.compiler.schedule.schedule_file import check_pins, dumps, read_pins

    steps = _Progress(progress, 6)
    steps.next("load")
    graph, proto = load_static(model, batch, _one_shape_set(shapes),
                               input_shapes or calibration_shapes(calibration, batch),
                               reference=keep_reference)
    source = graph.meta.pop("source_proto", proto)
    if not keep_reference:
        proto = source = None
    check_weights(graph, model if isinstance(model, str) else None)
    prequantized = prepare_contrib(graph)
    if prequantized is not None and auto_precision and "int8" in target.quant.dtypes:
        precision = "int8"  # the model's own int8 quantization, where the chip has int8
    steps.next("optimize")
    graph = optimize_graph(graph, opt_level)
    legalize(graph, target)
    steps.next("quantize")
    graph, computed = quantize_step(graph, target, precision, calibration, progress,
                                prequantized, fanout, wanted)
    estimate_at = computed if computed != "fp32" else estimate_precision(target, precision)
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
        summary["kv_cache_rows"] = program["state"]["rows"]
        summary["batch"] = program["state"]["batch"]
        # the tokens one run computes: each sequence's new ones (one in a decode step)
        new = program["inputs"][program["state"]["position"]]["shape"][0]
        summary["tokens_per_run"] = summary["batch"] * new
    result = CompileResult(target, graph, sched, program, weights, summary, computed,
                           estimate_at, proto, source)
    files = {
        "program.json": json_text(program),
        "weights.bin": weights,
        "schedule.json": dumps(sched),
        "summary.json": json_text(summary),
        "decisions.json": log_of(graph).dumps() + "\n",
    }
    files["report.html"] = write_report(summary, json.loads(files["decisions.json"]))
    result.files = files
    steps.close()
    result.seconds = steps.seconds
    return result


# -- the steps ---------------------------------------------------------------------------

def target_of(target):
    """``target`` as a Target (a chip name is looked up)."""
    from npuc.targets import get_target
    from npuc.targets.model import Target

    return target if isinstance(target, Target) else get_target(target)


def requested_precision(target, quantize: str) -> str:
    """The precision ``--quantize`` asks for on ``target`` (``auto``: the chip's preferred
    one); a precision the chip lacks is the user's error."""
    if quantize not in QUANTIZE_CHOICES:
        raise NpucError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not "
                        f"{quantize!r}")
    if quantize == "auto":
        return target.quant.preferred
    if quantize != "none" and quantize not in target.quant.dtypes:
        raise NpucError(f"{target.name} computes in {', '.join(target.quant.dtypes)}; "
                        f"--quantize {quantize} is not possible on it")
    return quantize


def estimate_precision(target, precision: str) -> str:
    """The precision the estimates assume for a program computing in ``precision``."""
    if precision != "none" and target.peak_ops(precision) is not None:
        return precision
    return "fp32" if target.peak_ops("fp32") is not None else target.quant.preferred


def optimize_graph(graph, level: int):
    """``npuc.optimize`` at ``level``, then the constants the fixed shapes left folded."""
    from npuc.compiler.passes import optimize
    from npuc.compiler.schedule.prepare import fold_constants

    graph = optimize(graph, level=level)
    fold_constants(graph)
    return graph


def _decoder_forms(graph, max_seq, last_logits, cache_rows=None, cache_scales=None) -> None:
    """The KV cache as device state (``max_seq``) and the last token's logits only, after
    quantization (calibration runs the model as it was exported)."""
    if last_logits:
        from npuc.compiler.passes.last_token import keep_last_token

        keep_last_token(graph)
    if max_seq is not None:
        from npuc.compiler.schedule.kvcache import attach_cache

        attach_cache(graph, max_seq, cache_rows, cache_scales)


def _one_shape_set(shapes):
    from npuc.compiler.schedule.shapes import parse_shapes

    sets = parse_shapes(shapes)
    if len(sets) > 1:
        raise NpucError(f"--shape asks for {len(sets)} shape sets; a program has one "
                        "(compile several with an output folder)")
    return sets[0]


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


def inputs_of(*specs) -> list:
    """The files among the user's inputs, which an output folder must never hold."""
    return [s for s in specs if isinstance(s, (str, os.PathLike))
            and not os.fspath(s).startswith(("zoo:", "random:"))]


def json_text(data) -> str:
    """``data`` as the JSON text of an artifact file: indented, keys sorted, one final
    newline, so the same data gives the same bytes."""
    from npuc.compiler.jsontext import dumps

    return dumps(data) + "\n"


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

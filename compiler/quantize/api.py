"""``npuc.quantize``: the post-training quantization pipeline, top to bottom.

1. the scheme from the target (precision, per-channel weights, (a)symmetric activations);
2. prepare: BatchNormalization folded into the Conv before it; for int8, the optimizer's
   fused operators split into the parts the integer rules know (:mod:`.unfuse`), and a
   Conv's output channels equalized into the depthwise Conv that reads them
   (:mod:`.equalize`);
3. calibrate: observe every activation over the calibration batches;
4. SmoothQuant for MatMuls with constant weights whose inputs have outlier columns;
5. ranges to scales and zero points;
6. rewrite: int8 npuc operators (or fp8/bf16/fp16 rounding) where a rule applies;
7. sensitivity: the layers that lose the most go back to float, when asked.
"""

from __future__ import annotations

import warnings

import numpy as np

from npuc.compiler import ops  # noqa: F401  (registers the quantized operators)
from npuc.ir.decisions import log_of
from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph
from npuc.ir.types import QuantParams

from .calibrate import Stats, calibrate
from .layers import layer_op
from .plan import Builder
from .prepare import prepare
from .scheme import scheme_for
from .smooth import smooth_matmuls

AUTO_METHOD = {"int8": "minmax", "fp8": "minmax"}


def random_calibration(graph: Graph, n: int = 8, seed: int = 0) -> list[dict]:
    """``n`` random input dicts (batch 1), as :func:`~npuc.compiler.executor.inputs.random_inputs`
    makes them: floats ~ N(0, 1), integers below the table they index. Ranges computed from
    them are poor; use real data for anything that matters."""
    from npuc.compiler.executor.inputs import random_inputs

    rng = np.random.default_rng(seed)
    return [random_inputs(graph, rng=rng) for _ in range(n)]


_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def check_finite_weights(graph: Graph) -> None:
    """A NaN or infinite weight has no scale: refuse it, naming the node and the weight."""
    from npuc.compiler.mapped import first_nonfinite

    for node in graph.nodes:
        if node.op_type not in _WEIGHTED:
            continue
        for v in node.inputs[1:3]:
            c = None if v is None else v.const
            found = first_nonfinite(c) if c is not None and c.dtype.kind == "f" else None
            if found is not None:
                bad = "NaN" if found[3] else "an infinite value"
                raise NpucError(f"{node.describe()}: its weight '{v.name}' holds {bad}, which "
                                "cannot be quantized")


def check_finite_samples(batches, where: str) -> None:
    """Calibration data with NaN or infinite values gives no range: refuse it."""
    for i, feeds in enumerate(batches):
        for name, arr in feeds.items():
            a = np.asarray(arr)
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise NpucError(f"{where}: input '{name}' (sample {i}) holds NaN or infinite "
                                "values; calibration needs finite data")


def quantize(graph: Graph, target="generic-npu", calibration=None, method: str = "auto",
             precision: str | None = None, keep_float=(), bias_correction: bool = True,
             smoothquant: float | None = 0.5, sensitivity: int = 0,
             progress: bool = True, accuracy=None, layers=None, fanout=None) -> Graph:
    """A quantized copy of ``graph`` for ``target``.

    ``calibration``: an iterable of input dicts (None: random inputs, with a warning).
    ``method``: ``auto``, ``minmax``, ``percentile``, ``entropy`` or ``mse``.
    ``precision``: ``int8``, ``fp8``, ``bf16``, ``fp16`` (default: the chip's preferred).
    ``keep_float``: node names to leave in float. ``bias_correction``: remove the mean
    error weight rounding adds to each output channel. ``smoothquant``: the migration
    strength alpha for MatMul inputs (None: off; ``"search"``: the alpha of 0.3 to 0.85
    whose model output is closest to the float one). ``sensitivity``: keep this many of
    the layers that lose the most accuracy in float. ``accuracy``: a requirement
    (``"argmax<=1%"``, ``"sqnr>=30"``, see :mod:`.requirement`) that the accuracy
    recovery meets on the calibration samples when it can. ``layers``: node name ->
    scheme for mixed precision (``bf16``, ``fp8``, ``w4a16-g128``..., see :mod:`.plan`).
    ``fanout``: a :class:`npuc.compiler.parallel.Fanout` that calibrates and measures the
    accuracy recovery's per-layer sensitivity on worker processes or Ray (the result is
    the same as in one process).

    Numeric hazards (int8 range collapse, fp16 overflow) found on the calibration data
    are fixed by a wider format for the layers concerned and logged. The result takes
    and returns float tensors; ``execute`` runs it with the chip's arithmetic.
    """
    from .plan import Plan, check_layer_scheme
    from .requirement import parse_requirement

    scheme = scheme_for(target, precision)
    if scheme.precision in ("int8", "fp8"):
        check_finite_weights(graph)
    requirement = parse_requirement(accuracy)
    for name, spec in sorted((layers or {}).items()):
        check_layer_scheme(scheme, name, spec)
    g = prepare(graph)
    calibrated = scheme.precision in ("int8", "fp8")
    if scheme.precision == "int8":
        from .unfuse import split_fused

        split_fused(g)
    if calibration is None and calibrated:
        warnings.warn("no calibration data: using random inputs, which give poor "
                      "quantization ranges", stacklevel=2)
        calibration = random_calibration(graph)
    _check_layer_names(g, layers or {})
    samples = list(calibration) if calibration is not None else None
    options = {"bias_correction": bias_correction, "keep_float": set(keep_float)}
    if scheme.precision == "int8" and scheme.weights_per_channel and samples:
        from .equalize import equalize

        equalize(g, samples)
    if calibrated:
        if method == "auto":
            method = AUTO_METHOD[scheme.precision]
        builder = _calibrated_builder(g, scheme, samples, method, progress, options,
                                      smoothquant, fanout)
    else:
        builder = Builder(g, scheme, None, {}, samples, options, "minmax")
    plan = Plan(layers=dict(layers or {}))
    _fix_hazards(builder, plan, samples if samples else random_calibration(graph, 2))
    q = builder.build(plan)
    if sensitivity > 0:
        q = _sensitivity_fallback(builder, plan, q, samples, sensitivity)
    if requirement is not None and samples:
        from .recovery import record_steps, recover

        q, plan, steps, agree = recover(builder, plan, requirement, samples, progress,
                                        fanout)
        record_steps(q, steps, requirement, agree)
    return q


def _check_layer_names(g: Graph, layers: dict) -> None:
    from npuc.ir.errors import NpucError

    names = {n.name for n in g.nodes}
    for name in sorted(layers):
        if name not in names:
            heavy = [n.name for n in g.nodes if layer_op(n)]
            raise NpucError(f"no node named '{name}' to give a layer scheme; the layers are "
                            f"{', '.join(heavy[:12])}{' ...' if len(heavy) > 12 else ''}")


def _calibrated_builder(g, scheme, samples, method, progress, options, smoothquant,
                        fanout=None):
    from .plan import Builder

    heavy = [n for n in g.nodes if layer_op(n)]
    chans = {n.inputs[0].name for n in heavy if layer_op(n) in ("Conv", "Gemm")}
    cols = {n.inputs[0].name for n in heavy if layer_op(n) == "MatMul" and
            n.input(1).const is not None}
    stats = calibrate(g, samples, method, progress, chans, cols, fanout)
    ranges = _ranges(stats, scheme)
    if smoothquant == "search" and scheme.precision == "int8":
        from .smooth import search_alpha

        smoothquant = search_alpha(g, stats, ranges, scheme, samples, options, method)
    if smoothquant is not None and scheme.precision == "int8":
        smooth_matmuls(g, stats, ranges, smoothquant)
    return Builder(g.copy(), scheme, stats, ranges, samples, options, method)


def _fix_hazards(builder, plan, samples) -> None:
    """Find int8 range collapse and fp16 overflow on the samples; move the layers
    concerned to a format that holds the values, and log each hazard."""
    from .hazards import collapse_region, find_hazards, magnitudes, sensitive_inputs
    from .plan import half_precision

    scheme = builder.scheme
    used = {scheme.precision, *plan.layers.values()}
    # fp16 is checked wherever a layer may end up in it: asked for, weight-only layers'
    # activations, or the half precision a collapsing int8 layer moves to
    precisions = tuple(p for p in ("int8", "fp8", "fp16") if p in used or
                       (p == "fp16" and half_precision(scheme) == "fp16"))
    if not precisions:
        return
    fg = builder.float_graph
    watch = sensitive_inputs(fg) if precisions == ("int8",) else None
    if watch == []:
        return  # int8 only, and nothing reads a tensor a collapse would hurt
    mags = magnitudes(fg, samples[:8], watch)
    found = find_hazards(fg, mags, precisions)
    if watch is not None and found:  # walking back needs every tensor's statistics
        mags = magnitudes(fg, samples[:8])
    overflow = {h.value for h in found if h.kind == "fp16-overflow"}
    for h in found:
        wide = "bf16" if "bf16" in scheme.dtypes else "fp32"
        if h.kind == "int8-collapse" and h.value not in overflow:
            wide = half_precision(scheme) or "fp32"
        if h.kind == "fp8-collapse":
            moved = [h.reader]
        elif h.kind == "int8-collapse":
            moved = collapse_region(fg, h.value, mags)
        else:
            moved = _overflow_chain(fg, h)
        for name in moved:
            plan.layers[name] = wide
            plan.reasons[name] = f"{h.kind}: {h.message}"
        log_of(fg).record("quantize", h.node or h.value, "hazard",
                          f"{h.message}; {', '.join(moved) or 'nothing'} computed in {wide}",
                          kind=h.kind, value=h.value)


def _overflow_chain(fg, hazard) -> list[str]:
    """The producer of an overflowing value and the layers that read it (they would
    round it to fp16 on the way in)."""
    out = [hazard.node] if hazard.node else []
    for n in fg.nodes:
        if layer_op(n) and \
                any(v is not None and v.name == hazard.value for v in n.inputs):
            out.append(n.name)
    return out


def _sensitivity_fallback(builder, plan, q, samples, k: int) -> Graph:
    from .compare import layer_report

    rows = layer_report(q, (samples or [])[:1])
    worst = sorted((r for r in rows if r.node and r.loss is not None),
                   key=lambda r: -r.loss)[:k]
    for r in worst:
        plan.layers[r.node] = "fp32"
        plan.reasons[r.node] = (f"sensitivity: quantizing it loses {r.loss:.1f} dB of SQNR, "
                                "among the most of all layers")
    return builder.build(plan)


def _ranges(stats: Stats, scheme) -> dict[str, tuple[float, float]]:
    out = {}
    for name, obs in stats.observers.items():
        if obs.seen:
            out[name] = obs.range(256, scheme.act_symmetric)
    return out


def params_of(graph: Graph) -> dict[str, QuantParams]:
    """The quantization parameters of every int8 value of a quantized graph, by name."""
    return {v.name: v.type.quant for v in graph.values()
            if getattr(v.type, "quant", None) is not None}






__all__ = ["quantize", "random_calibration", "params_of"]

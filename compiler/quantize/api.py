"""``npuc.quantize``: the post-training quantization pipeline, top to bottom.

1. the scheme from the target (precision, per-channel weights, (a)symmetric activations);
2. prepare: BatchNormalization folded into the Conv before it; for int8, the optimizer's
   fused operators split into the parts the integer rules know (:mod:`.unfuse`);
3. calibrate: observe every activation over the calibration batches;
4. SmoothQuant for MatMuls with constant weights whose inputs have outlier columns;
5. ranges to scales and zero points;
6. rewrite: int8 npuc operators (or fp8/bf16/fp16 rounding) where a rule applies;
7. sensitivity: the layers that lose the most go back to float, when asked.
"""

from __future__ import annotations

import warnings

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph
from npuc.ir.types import QuantParams

from . import ops  # noqa: F401  (registers the quantized operators)
from .calibrate import Stats, calibrate
from .params import activation_params
from .prepare import prepare
from .rewrite import Rewriter, keep_reasons
from .scheme import scheme_for
from .smooth import smooth_matmuls

AUTO_METHOD = {"int8": "minmax", "fp8": "minmax"}


def random_calibration(graph: Graph, n: int = 8, seed: int = 0) -> list[dict]:
    """``n`` random input dicts (batch 1): images ~ N(0, 1), integers small. Ranges
    computed from them are poor; use real data for anything that matters."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n):
        feeds = {}
        for v in graph.inputs:
            shape = [d if isinstance(d, int) else 1 for d in (v.type.shape or [])]
            dt = v.type.dtype.numpy
            if np.dtype(dt).kind == "f":
                feeds[v.name] = rng.standard_normal(shape).astype(dt)
            elif np.dtype(dt).kind in "iu":
                feeds[v.name] = rng.integers(0, 2, size=shape).astype(dt) if "mask" in v.name \
                    else rng.integers(0, 100, size=shape).astype(dt)
            else:
                feeds[v.name] = np.zeros(shape, dt)
        batches.append(feeds)
    return batches


def quantize(graph: Graph, target="generic-npu", calibration=None, method: str = "auto",
             precision: str | None = None, keep_float=(), bias_correction: bool = True,
             smoothquant: float | None = 0.5, sensitivity: int = 0,
             progress: bool = True) -> Graph:
    """A quantized copy of ``graph`` for ``target``.

    ``calibration``: an iterable of input dicts (None: random inputs, with a warning).
    ``method``: ``auto``, ``minmax``, ``percentile``, ``entropy`` or ``mse``.
    ``precision``: ``int8``, ``fp8``, ``bf16``, ``fp16`` (default: the chip's preferred).
    ``keep_float``: node names to leave in float. ``bias_correction``: remove the mean
    error weight rounding adds to each output channel. ``smoothquant``: the migration
    strength alpha for MatMul inputs (None: off). ``sensitivity``: keep this many of the
    layers that lose the most accuracy in float.

    The result takes and returns float tensors; ``execute`` runs it with the chip's
    integer arithmetic.
    """
    scheme = scheme_for(target, precision)
    g = prepare(graph)
    if scheme.precision in ("bf16", "fp16"):
        from .floatq import rewrite_float

        keep = keep_reasons(keep_float)
        if scheme.precision == "fp16":
            keep = _avoid_fp16_overflow(g, calibration, keep)
        rewrite_float(g, scheme.precision, {}, keep)
        g.meta["quantize"] = {"scheme": scheme, "float_graph": prepare(graph), "map": {}}
        return g
    if scheme.precision == "int8":
        from .unfuse import split_fused

        split_fused(g)
    if calibration is None:
        warnings.warn("no calibration data: using random inputs, which give poor "
                      "quantization ranges", stacklevel=2)
        calibration = random_calibration(graph)
    if method == "auto":
        method = AUTO_METHOD[scheme.precision]
    heavy = [n for n in g.nodes if n.op_type in ("Conv", "Gemm", "MatMul") and not n.domain]
    chans = {n.inputs[0].name for n in heavy if n.op_type in ("Conv", "Gemm")}
    cols = {n.inputs[0].name for n in heavy if n.op_type == "MatMul" and
            n.input(1).const is not None}
    calibration = list(calibration)
    stats = calibrate(g, calibration, method, progress, chans, cols)
    ranges = _ranges(stats, scheme)
    if smoothquant is not None and scheme.precision == "int8":
        smooth_matmuls(g, stats, ranges, smoothquant)
    float_graph = g.copy()
    if scheme.precision == "fp8":
        from .floatq import rewrite_float

        amax = {k: max(-lo, hi) for k, (lo, hi) in ranges.items()}
        keep = _avoid_fp8_collapse(g, calibration, amax, keep_reasons(keep_float))
        rewrite_float(g, "fp8", amax, keep)
        g.meta["quantize"] = {"scheme": scheme, "float_graph": float_graph, "map": {}}
        return g
    act = {k: activation_params(lo, hi, scheme) for k, (lo, hi) in ranges.items()}
    keep = _avoid_int8_collapse(float_graph, calibration, act, keep_reasons(keep_float))
    options = {"bias_correction": bias_correction, "keep_float": keep}
    q = _rewrite(float_graph, scheme, act, stats, options)
    if sensitivity > 0:
        from .compare import layer_report

        rows = layer_report(q, calibration[:1])
        worst = sorted((r for r in rows if r.node and r.loss is not None),
                       key=lambda r: -r.loss)[:sensitivity]
        for r in worst:
            options["keep_float"].setdefault(
                r.node, f"sensitivity: quantizing it loses {r.loss:.1f} dB of SQNR, among "
                        "the most of all layers")
        q = _rewrite(float_graph, scheme, act, stats, options)
    return q


def _avoid_fp16_overflow(g: Graph, calibration, keep: dict) -> dict:
    """Keep in float32 the layers whose matrix-unit inputs overflow fp16."""
    from .floatq import ROUNDED
    from .hazards import fp16_overflow, keep_for

    rounded = {n.name: ROUNDED[(n.domain if n.domain != "ai.onnx" else "", n.op_type)]
               for n in g.nodes if n.name not in keep and
               (n.domain if n.domain != "ai.onnx" else "", n.op_type) in ROUNDED}
    samples = calibration if calibration is not None else random_calibration(g, 2)
    hazards = fp16_overflow(g, samples, rounded)
    for h in hazards:
        h.record(g)
    return {**keep_for(hazards), **keep}


def _avoid_int8_collapse(g: Graph, calibration, act: dict, keep: dict) -> dict:
    """Keep in float the layers that read an activation whose int8 range collapses."""
    from .hazards import INT8_FLUSH_SHARE, int8_levels
    from .rules import RULES

    readers: dict[str, list[str]] = {}
    for node in g.nodes:
        key = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
        if key not in RULES or node.name in keep:
            continue
        for v in node.inputs:
            if v is not None and v.const is None and v.name in act:
                readers.setdefault(v.name, []).append(node.name)
    formats = {name: int8_levels(p) for name, p in act.items() if name in readers}
    return _keep_collapsed(g, calibration, formats, readers, keep, "int8 range collapse",
                           flush=INT8_FLUSH_SHARE)


def _avoid_fp8_collapse(g: Graph, calibration, amax: dict, keep: dict) -> dict:
    """Keep in float the layers whose matrix-unit inputs flush to zero in fp8."""
    from .floatq import ROUNDED
    from .hazards import FLUSH_SHARE, fp8_levels

    readers: dict[str, list[str]] = {}
    for node in g.nodes:
        which = ROUNDED.get((node.domain if node.domain != "ai.onnx" else "", node.op_type))
        if which is None or node.name in keep:
            continue
        for i in which:
            v = node.input(i)
            if v is not None and v.const is None and amax.get(v.name, 0) > 0:
                readers.setdefault(v.name, []).append(node.name)
    formats = {name: fp8_levels(amax[name]) for name in readers}
    return _keep_collapsed(g, calibration, formats, readers, keep, "fp8 range collapse",
                           flush=FLUSH_SHARE)


def _keep_collapsed(g, calibration, formats, readers, keep, kind, flush=None) -> dict:
    from .hazards import keep_for, range_collapse

    hazards = range_collapse(g, calibration, formats, readers, kind, flush)
    for h in hazards:
        h.record(g)
    return {**keep_for(hazards), **keep}


def _rewrite(float_graph, scheme, act, stats, options) -> Graph:
    g = float_graph.copy()
    rw = Rewriter(g, scheme, act, stats, options)
    rw.run(options["keep_float"])
    if log_of(g) is not log_of(float_graph):
        log_of(g).entries.extend(list(log_of(float_graph)))
    g.meta["quantize"] = {"scheme": scheme, "float_graph": float_graph, "map": rw.float_of}
    return g


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

"""The compile pipeline's quantize step: a pre-quantized model's own parameters, the
calibration inputs (the user's samples in batches, or random inputs, said so), the
accuracy requirement, then ``npuc.quantize``.
"""

from __future__ import annotations

import os

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.errors import NpucError


def prepare_contrib(graph):
    """onnxruntime's contrib operators rewritten (at every -O level), and a pre-quantized
    model's own parameters taken out of its Q/DQ pairs (None when it has none)."""
    from npuc.compiler.passes.contrib_expand import expand_contrib
    from npuc.compiler.quantize.prequantized import is_prequantized, take_parameters

    expand_contrib(graph)
    if not is_prequantized(graph):
        return None
    graph.meta["prequantized"] = True
    return take_parameters(graph)


class InputsAsCalibration(list):
    """Samples a command calibrates on because the user gave none (``verify``'s inputs):
    a pre-quantized model keeps its own scales instead, as with no samples at all."""


def quantize_step(graph, target, precision: str, calibration, progress: bool = False,
              prequantized=None, fanout=None, wanted=("auto", None, 1, None)):
    """``(graph, precision it computes in)``; ``wanted``: (accuracy, preprocess, batch,
    layers)."""
    from npuc.compiler.schedule.costview import graph_precision

    log = log_of(graph)
    if prequantized is not None:
        from npuc.compiler.quantize.prequantized import quantize_prequantized, why_not_used

        if precision == "int8" and (calibration is None or
                                    isinstance(calibration, InputsAsCalibration)):
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


def calibration_shapes(calibration, batch: int = 1) -> dict | None:
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

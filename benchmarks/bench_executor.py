"""Executor speed against onnxruntime and onnx.reference, measured in the same run.

    python benchmarks/bench_executor.py [resnet50 bert-base ...] [--repeat N]

For each model: the first run (kernel compilation, or loading it from Numba's cache),
the steady-state latency of ``npuc.execute`` (best of N), onnxruntime's (2 threads, all
optimizations) and, for ResNet-50, ``onnx.reference.ReferenceEvaluator``'s; the ratios;
and the largest relative difference of the outputs. Run it twice to see the cache at work.
Goals: ResNet-50 within 3x of onnxruntime, BERT-base within 1.5x, ResNet-50 at least 5x
faster than onnx.reference.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    import onnxruntime as ort

    from npuc import zoo
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.frontend.onnx_import import import_onnx

    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="*", default=["resnet50", "bert-base"])
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--reference", action="store_true",
                   help="also time onnx.reference on every model (slow), not only ResNet-50")
    args = p.parse_args()
    print(f"{'model':12s} {'first run':>10s} {'npuc':>9s} {'ort':>9s} {'ratio':>6s} "
          f"{'reference':>10s} {'speedup':>8s} {'rel err':>9s}")
    for name in args.models:
        model = zoo.build(name)
        graph = import_onnx(model)
        feeds = zoo.sample_inputs(name)
        t0 = time.perf_counter()
        ours = execute(graph, feeds)
        first = time.perf_counter() - t0
        npuc_t = best_of(lambda: execute(graph, feeds), args.repeat)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        want = sess.run(None, feeds)
        ort_t = best_of(lambda: sess.run(None, feeds), args.repeat)
        err = max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
                  for a, b in zip(ours.values(), want))
        ref_t = speed = float("nan")
        if name == "resnet50" or args.reference:
            from onnx.reference import ReferenceEvaluator

            ref = ReferenceEvaluator(model)
            ref_t = best_of(lambda: ref.run(None, feeds), 2)
            speed = ref_t / npuc_t
        print(f"{name:12s} {first * 1e3:8.0f}ms {npuc_t * 1e3:7.1f}ms {ort_t * 1e3:7.1f}ms "
              f"{npuc_t / ort_t:5.2f}x {ref_t * 1e3:8.0f}ms {speed:7.1f}x {err:9.2e}")


if __name__ == "__main__":
    main()

"""Executor speed against onnxruntime, interleaved in one process, on PyTorch exports.

    python benchmarks/bench_executor.py [resnet50 mobilenetv2 bert-base gpt2 vit-base]
        [--exporter torchscript dynamo] [--repeat N] [--threads T] [--batch B]
        [--profile] [--zoo] [--busy N]

Models come from ``benchmarks/models/`` (written by ``benchmarks/export_models.py``:
``<name>-<exporter>.onnx`` and ``<name>.inputs.npz``); ``--zoo`` times npuc's built-in zoo
models instead. Both engines get the same thread policy: ``T`` threads (default 2) for
onnxruntime's intra-op pool (all graph optimizations on) and for npuc's BLAS
(``NPUC_BLAS_THREADS``). onnxruntime optimizes the graph when it opens its session;
npuc runs three ways: the graph after npuc's own optimizer (``-O2``, what ``npuc run``
runs and what calibration sees) and the graph as imported (``-O0``), both with float32
products (float32 BLAS, as onnxruntime computes), and the imported graph with float64
products (the IR's definition, that programs are verified against). The runs alternate
(npuc -O2, npuc -O0, npuc float64, onnxruntime, then the next round starting one later),
with a pause of 0.1 s after each (onnxruntime's threads spin for a while after a run and
slowed whichever run came next), so a change in the machine's load hits all alike;
printed per row are the best and the median, the ratio of
the medians and of the bests to onnxruntime's, and the largest relative difference of the
outputs from onnxruntime's; then the first npuc run (Numba compilation or cache load),
the optimizer's time and the load average before and after. ``--profile`` adds npuc's
five slowest operator types per model and graph (float32 products, one run),
``--reference`` onnx.reference's time, ``--busy N`` runs N CPU-bound processes beside the
benchmark (a loaded machine, reproducibly).
Goal: every float32 ratio at or under 1.2x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

MODELS = ["resnet50", "mobilenetv2", "bert-base", "gpt2", "vit-base"]


def _load(name: str, exporter: str, batch: int, zoo_models: bool):
    """(onnx path or proto, feeds) for one model."""
    if zoo_models:
        from npuc import zoo

        proto = zoo.build(name)
        return proto, zoo.sample_inputs(name, batch=batch)
    # resolved: a dynamo export keeps its weights in a .data file beside the real file
    path = os.path.realpath(os.path.join(HERE, "models", f"{name}-{exporter}.onnx"))
    feeds = dict(np.load(os.path.join(HERE, "models", f"{name}.inputs.npz")))
    feeds = {k: v[:batch] for k, v in feeds.items()}
    return path, feeds


def _interleaved(fns, repeat: int, pause: float = 0.1) -> list[list[float]]:
    """Times of ``repeat`` rounds of every function, the order rotated each round and a
    pause after each run: onnxruntime's threads spin for a while after its run and would
    slow whichever run comes next."""
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeat):
        for k in range(len(fns)):
            i = (k + r) % len(fns)
            t0 = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - t0)
            time.sleep(pause)
    return times


def _ort_session(model, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    src = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _profile(graph, feeds) -> str:
    from npuc.compiler.executor.interpreter import RunStats, execute

    stats = RunStats()
    execute(graph, feeds, stats=stats, profile=True, products="float32")
    top = sorted(stats.per_op_seconds.items(), key=lambda kv: -kv[1])[:5]
    return ", ".join(f"{k} {v * 1e3:.1f}" for k, v in top)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=MODELS)
    p.add_argument("--exporter", nargs="+", default=["torchscript", "dynamo"])
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--zoo", action="store_true", help="npuc's zoo models (one build each)")
    p.add_argument("--reference", action="store_true",
                   help="also time onnx.reference (slow; best of 2) against npuc")
    p.add_argument("--busy", type=int, default=0, metavar="N",
                   help="run N CPU-bound neighbours (one-thread float32 products) for the "
                        "whole benchmark: a loaded machine that can be reproduced")
    args = p.parse_args()
    neighbours = [_busy_neighbour() for _ in range(args.busy)]
    try:
        return _run(args)
    finally:
        for proc in neighbours:
            proc.kill()
            proc.wait()


def _busy_neighbour():
    """A separate process multiplying float32 matrices on one thread until killed."""
    import subprocess

    code = ("import numpy as np\n"
            "a = np.full((512, 512), 1 / 512, np.float32)\n"  # a @ a == a, exactly
            "while True: a = a @ a\n")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def _run(args) -> int:
    os.environ["NPUC_BLAS_THREADS"] = str(args.threads)

    import npuc
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.passes.manager import optimize

    load0 = os.getloadavg()
    print(f"{os.cpu_count()} cores, {args.threads} threads for both, batch {args.batch}, "
          f"{args.busy} busy neighbours, "
          f"load average {load0[0]:.2f} at start; milliseconds, best / median of "
          f"{args.repeat} interleaved runs")
    print(f"{'model':24s} {'first':>6s} {'opt':>3s} {'products':>8s} {'npuc':>15s} {'onnxruntime':>15s} "
          f"{'ratio med':>9s} {'best':>6s} {'rel err':>9s}")
    worst: dict[str, float] = {}
    for name in args.models:
        for exporter in ([None] if args.zoo else args.exporter):
            label = name if exporter is None else f"{name}-{exporter}"
            model, feeds = _load(name, exporter, args.batch, args.zoo)
            graph = npuc.load_model(model)
            t0 = time.perf_counter()
            optimized = optimize(graph, level=2)
            opt_time = time.perf_counter() - t0
            t0 = time.perf_counter()
            execute(graph, feeds)
            first = time.perf_counter() - t0
            sess = _ort_session(model, args.threads)
            want = sess.run(None, feeds)
            # (label, graph, products): -O2 float32 is what `npuc run` does by default
            modes = [("-O2", optimized, "float32"), ("-O0", graph, "float32"),
                     ("-O0", graph, "float64")]
            runs = [lambda g=g, f=feeds, m=m: execute(g, f, products=m) for _, g, m in modes]
            *tn, to = _interleaved([*runs, lambda s=sess, f=feeds: s.run(None, f)],
                                   args.repeat)
            mo = statistics.median(to)
            for k, (level, _, mode) in enumerate(modes):
                ours = runs[k]()
                err = max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
                          for a, b in zip(ours.values(), want))
                mn = statistics.median(tn[k])
                if mode == "float32":
                    worst[level] = max(worst.get(level, 0.0), mn / mo)
                head = f"{label:24s} {first * 1e3:6.0f}" if k == 0 else " " * 31
                print(f"{head} {level:>3s} "
                      f"{mode:>8s} {min(tn[k]) * 1e3:7.1f} /{mn * 1e3:6.1f} "
                      f"{min(to) * 1e3:7.1f} /{mo * 1e3:6.1f} {mn / mo:8.2f}x "
                      f"{min(tn[k]) / min(to):5.2f}x {err:9.2e}")
            print(f"{'':24s} npuc's -O2 took {opt_time * 1e3:.0f} ms (once per model)")
            if args.profile:
                for level, g in (("-O2", optimized), ("-O0", graph)):
                    print(f"{'':24s} npuc {level} by operator (ms): {_profile(g, feeds)}")
            if args.reference:
                from onnx.reference import ReferenceEvaluator

                ref = ReferenceEvaluator(model)
                (tr,) = _interleaved([lambda r=ref, f=feeds: r.run(None, f)], 2)
                print(f"{'':24s} onnx.reference {min(tr) * 1e3:.0f} ms, npuc "
                      f"{min(tr) / min(tn[1]):.1f}x faster")
            del graph, optimized, sess
    load1 = os.getloadavg()
    print(f"load average {load1[0]:.2f} at end; worst float32 median ratio "
          + ", ".join(f"{k} {v:.2f}x" for k, v in worst.items()) + " (goal 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

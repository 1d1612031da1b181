"""The command-stream simulator against the executor on the same graph, at batch 1.

    python benchmarks/bench_simulator.py [resnet50 bert-base ...] [--target T]
        [--repeat N] [--threads T] [--profile]

Each model (npuc's zoo) is compiled once for the target; then the program's simulation
(``simulate``) and the executor on the compiled graph (``execute(compiled.graph)``, the
IR the program must equal bit for bit) alternate on the same input. Printed: the best and
median of each, the ratio of the medians, the command count and whether the outputs are
bit-identical; ``--profile`` adds where the simulator's time goes (kernels, DMA copies,
the rest per command). Goal: the simulator at most 1.5x the executor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def _profile(program, weights, feeds) -> str:
    from npuc.compiler.executor.simulator import simulate

    spent: dict[str, float] = {}
    last = [None, 0.0]

    def trace(index, cmd):
        now = time.perf_counter()
        if last[0] is not None:
            spent[last[0]] = spent.get(last[0], 0.0) + now - last[1]
        last[0], last[1] = cmd["op"], now

    t0 = time.perf_counter()
    simulate(program, weights, feeds, trace=trace)
    end = time.perf_counter()
    spent[last[0]] = spent.get(last[0], 0.0) + end - last[1]
    total = end - t0
    parts = ", ".join(f"{k} {v * 1e3:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]))
    return f"{parts} (total {total * 1e3:.1f} ms)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=["resnet50", "bert-base"])
    p.add_argument("--target", default="rngd")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    os.environ["NPUC_BLAS_THREADS"] = str(args.threads)

    import numpy as np

    from npuc import zoo
    from npuc.compiler import driver
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.executor.simulator import simulate

    print(f"{os.cpu_count()} cores, {args.threads} threads, batch 1, target {args.target}, "
          f"load average {os.getloadavg()[0]:.2f} at start; milliseconds, best / median "
          f"of {args.repeat} interleaved runs")
    print(f"{'model':14s} {'precision':>9s} {'commands':>8s} {'simulator':>15s} "
          f"{'executor':>15s} {'ratio':>6s}  program vs IR")
    worst = 0.0
    for name in args.models:
        proto = zoo.build(name)
        r = driver.compile(proto, args.target, calibration="random:2")
        feeds = zoo.sample_inputs(proto, batch=1, seed=0)
        got = simulate(r.program, r.weights, feeds)
        ir = execute(r.graph, feeds)
        same = all(np.array_equal(np.asarray(got[k]), np.asarray(ir[k])) for k in ir)
        ts, te = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            simulate(r.program, r.weights, feeds)
            t1 = time.perf_counter()
            execute(r.graph, feeds)
            ts.append(t1 - t0)
            te.append(time.perf_counter() - t1)
        ratio = statistics.median(ts) / statistics.median(te)
        worst = max(worst, ratio)
        print(f"{name:14s} {r.precision:>9s} {len(r.program['commands']):8d} "
              f"{min(ts) * 1e3:7.1f} /{statistics.median(ts) * 1e3:6.1f} "
              f"{min(te) * 1e3:7.1f} /{statistics.median(te) * 1e3:6.1f} {ratio:5.2f}x  "
              f"{'identical' if same else 'DIFFERENT'}")
        if args.profile:
            print(f"{'':14s} simulator by command (ms): {_profile(r.program, r.weights, feeds)}")
    print(f"load average {os.getloadavg()[0]:.2f} at end; worst ratio {worst:.2f}x (goal 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

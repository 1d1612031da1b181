"""Calibration fanned out: wall time with 1 worker, 2 local workers and a local Ray, from one
run, and a check that the three compiled artifacts are byte-identical.

    python benchmarks/bench_fanout.py                       # BERT-base, 64 samples
    python benchmarks/bench_fanout.py --model zoo:bert-tiny --samples 16 --no-ray

Each configuration compiles the model for the target with the same calibration samples
(``npuc.compile(..., fanout=...)``); the model is built once and given as an ONNX proto,
so loading it is not timed. With real samples a compile also checks the quantized
model's answers against the float model's (the accuracy requirement, a search over the
layers when it is not met); that is left out unless ``--accuracy auto`` asks for it, so
that the figures are calibration's. Printed per configuration: the time of the quantize step
(calibration plus rewriting: what fans out) and of the whole compile, and the speed-up of
the quantize step over one process on one thread. Aim: 2 workers at least 1.6x faster
than 1 on a 2-core machine. Every worker computes on one thread; one process is timed
both on one thread and on two (npuc's thread pool, see compiler/executor/threads.py), and
the last line says plainly how 2 workers compare with the latter.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def _compile(proto, target, samples, fanout, accuracy):
    from npuc.compiler import driver

    t0 = time.perf_counter()
    r = driver.compile(proto, target, calibration=samples, fanout=fanout,
                       accuracy=None if accuracy == "none" else accuracy)
    return r, time.perf_counter() - t0


def _print_search(result) -> None:
    """The accuracy search's steps, from the decision log all configurations share."""
    import json

    for e in json.loads(result.files["decisions.json"]):
        if e["stage"] == "accuracy":
            print(f"  accuracy: {e['subject'][:60]}: {e['action']}: {e['reason'][:140]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="zoo:bert-base")
    p.add_argument("--target", default="warboy")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-ray", action="store_true", help="skip the Ray configuration")
    p.add_argument("--no-threads", action="store_true",
                   help="skip one process on several threads (the search is long)")
    p.add_argument("--accuracy", default="none",
                   help="the accuracy requirement checked after calibration (default none: "
                        "calibration alone; auto: the default requirement and its search)")
    args = p.parse_args()

    from npuc import zoo
    from npuc.compiler.parallel import Fanout

    load0 = os.getloadavg()[0]
    name = args.model.removeprefix("zoo:")
    t0 = time.perf_counter()
    proto = zoo.build(name)
    samples = [zoo.sample_inputs(proto, batch=1, seed=i) for i in range(args.samples)]
    print(f"{args.model}: built in {time.perf_counter() - t0:.1f} s; {args.samples} "
          f"calibration samples; target {args.target}; {os.cpu_count()} cores")
    configs = [("1 process, 1 thread", None, "1")]
    if not args.no_threads:
        configs.append((f"1 process, {args.workers} threads", None, str(args.workers)))
    configs.append((f"{args.workers} local workers", Fanout(workers=args.workers), "1"))
    if not args.no_ray:
        import ray

        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        configs.append((f"Ray, {args.workers} CPUs", Fanout(ray=""), "1"))
    rows, first = [], None
    for label, fanout, threads in configs:
        os.environ["NPUC_BLAS_THREADS"] = threads  # npuc's threads in this process
        if fanout is not None:
            fanout.start()  # local workers fork from a server started with this setting
        result, total = _compile(proto, args.target, samples, fanout, args.accuracy)
        digest = hashlib.sha256(b"".join(k.encode() + hashlib.sha256(v if isinstance(
            v, bytes) else v.encode()).digest() for k, v in sorted(result.files.items())))
        print(f"  {label}: quantize {result.seconds['quantize']:.1f} s, compile {total:.1f} s, "
              f"artifacts sha256 {digest.hexdigest()[:16]}", flush=True)
        quant = result.seconds["quantize"]
        same = first is None or result.files == first.files
        first = first or result
        rows.append((label, quant, total, same, fanout.events if fanout else []))
    base = rows[0][1]
    print(f"{'configuration':<22} {'quantize s':>10} {'compile s':>10} {'speed-up':>9}  "
          "artifacts")
    for label, quant, total, same, events in rows:
        print(f"{label:<22} {quant:10.1f} {total:10.1f} {base / quant:8.2f}x  "
              f"{'identical' if same else 'DIFFERENT'}"
              + (f"  ({len(events)} retried)" if events else ""))
    if not args.no_threads:
        print(f"{args.workers} workers against one process with {args.workers} threads: "
              f"{rows[1][1] / rows[2][1]:.2f}x")
    _print_search(first)
    print(f"load average {os.getloadavg()[0]:.2f} at end ({load0:.2f} at start)")
    return 0 if all(r[3] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

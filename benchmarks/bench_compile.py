"""Compile time, peak memory and estimated latency, against model size.

    python benchmarks/bench_compile.py                      # every case
    python benchmarks/bench_compile.py --case resnet50-warboy-2pe
    python benchmarks/bench_compile.py --case bert-base-rngd --repeat 5   # medians of 5
    python benchmarks/bench_compile.py --scaling            # 1B-dimension decoders only
    python benchmarks/bench_compile.py --large              # Llama 3.1 70B over 8 RNGD cards

Each case runs ``npuc compile`` as a whole process (imports and model building included),
after one untimed run of the same compile (``--no-warmup`` leaves it out): what a user
waits for the second time, with Numba's cache, Python's byte-code cache and the zoo's
cache of random weights (``compiler/zoo/draws.py``) warm. ``PYTHONDONTWRITEBYTECODE``
is dropped from the compile's environment, as a user's shell does not set it. It prints
its wall time, its CPU time (user + system: what the compile itself costs on
a machine other processes share), its peak resident memory, the weights at the compiled
precision, with the goal ``peak <= 2 x weights + 2 GB``, and the one-minute load average
before and after the case (``load``: other processes on the machine move wall times;
with ``--repeat N`` each case is timed N times and the medians are given). Latency is compared
with the MLPerf single-stream p90 result where one is published (CHIPS.md: Warboy 2PE
ResNet-50 0.712 ms, ATOM ResNet-50 0.239 ms); the goal is an estimate within 0.5x to 2x.

The scaling cases are decoders of Llama-3.2-1B's widths (hidden 2048, 32 heads, 8 KV
heads, MLP 8192, vocabulary 128256) with 2, 4, 8 and 16 layers, in their decode form,
random weights written once as ONNX external data (``bench_llm.build``), compiled for
rngd at bf16: time and memory should grow linearly with the layers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# (name, model, target, extra arguments, compile-time budget in s, MLPerf ms or None)
CASES = [
    ("resnet50-warboy-2pe", "zoo:resnet50", "warboy-2pe",
     ["--quantize", "int8", "--calibration", "random:8"], 10.0, 0.712),
    ("resnet50-atom", "zoo:resnet50", "atom",
     ["--quantize", "int8", "--calibration", "random:8"], 10.0, 0.239),
    ("bert-base-rngd", "zoo:bert-base", "rngd", [], 20.0, None),
]
LAYERS = (2, 4, 8, 16)
# The zoo's Llama 3.1 70B (weights: a sparse file of zeros, never read) split over 8 RNGD
# cards by tensor parallelism, 401 segments per card: the budget is a few minutes, and
# memory should stay flat (a few hundred MB), nothing like the weights' 141 GB.
LARGE = [("llama3.1-70b-rngd-x8", "zoo:llama3.1-70b", "rngd",
          ["--chips", "8", "--quantize", "bf16"], 300.0, None)]


# runs the CLI and writes its own CPU time and peak RSS to the file named by argv[1]; the
# peak is VmHWM (this process image's), not ru_maxrss, which keeps the parent's peak
# across fork and exec
CHILD = """
import json, resource, sys
from npuc.compiler.cli import main
try:
    code = main(sys.argv[2:])
finally:
    r = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    with open(sys.argv[1], "w") as f:
        json.dump({"cpu": r.ru_utime + r.ru_stime, "peak": hwm * 1024}, f)
sys.exit(code)
"""


def _run(args: list[str], folder: str) -> tuple[int, str, float, float, int]:
    """``(exit code, stderr, wall s, cpu s, peak RSS bytes)`` of ``npuc ARGS`` as a
    process of its own."""
    usage = os.path.join(folder, "usage.json")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, usage, *args], capture_output=True,
                          text=True, env=env)
    wall = time.perf_counter() - t0
    with open(usage, encoding="utf-8") as f:
        r = json.load(f)
    return proc.returncode, proc.stderr, wall, r["cpu"], r["peak"]


def run_case(name, model, target, extra, budget, mlperf_ms, warmup=True, repeat=1) -> dict:
    """One case's row: the median of ``repeat`` timed runs (each run's wall and CPU
    times listed when there are several), and the load average before and after."""
    load = [round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        args = ["compile", model, "--target", target, "-o", out, *extra]
        if warmup:
            _run(args, tmp)
        runs = []
        for _ in range(repeat):
            code, err, seconds, cpu, peak = _run(args, tmp)
            if code != 0:
                return {"case": name, "error": err.strip()}
            runs.append((seconds, cpu, peak))
        summary = _summary(out)
    load.append(round(os.getloadavg()[0], 2))
    seconds, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    peak = max(r[2] for r in runs)
    est_ms = summary["estimated_latency_s"] * 1e3
    weights = summary["weights_bytes"]
    row = {"case": name, "compile_s": round(seconds, 2), "cpu_s": round(cpu, 2),
           "budget_s": budget, "peak_rss_gb": round(peak / 1e9, 2),
           "weights_gb": round(weights / 1e9, 3),
           "memory_goal_gb": round((2 * weights + 2e9) / 1e9, 2),
           "estimated_ms": round(est_ms, 4), "precision": summary["estimated_at"],
           "sram_peak_bytes": summary["sram_peak_bytes"]}
    if mlperf_ms:
        row.update(mlperf_ms=mlperf_ms, ratio=round(est_ms / mlperf_ms, 3))
    if repeat > 1:
        row.update(runs_s=[round(r[0], 2) for r in runs], runs_cpu_s=[round(r[1], 2)
                                                                      for r in runs])
    row["load"] = load
    return row


def _summary(out: str) -> dict:
    """The compile's summary; for several chips, the whole's latency, the largest
    chip's weights and the first chip's precision and SRAM peak."""
    chips = os.path.join(out, "chips.json")
    if not os.path.exists(chips):
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
            return json.load(f)
    with open(chips, encoding="utf-8") as f:
        manifest = json.load(f)
    with open(os.path.join(out, "chip0-summary.json"), encoding="utf-8") as f:
        first = json.load(f)
    return {"estimated_latency_s": manifest["estimated_latency_s"],
            "weights_bytes": max(s["weights_bytes"] for s in manifest["stages"]),
            "estimated_at": manifest["precision"],
            "sram_peak_bytes": first.get("sram_peak_bytes")}


def scaling_cases(folder: str, layers=LAYERS, wanted=None):
    """The decoder cases, one model file per layer count (built into ``folder``, one at
    a time as the cases are run; only those named in ``wanted`` when it is given)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_llm import build

    for n in layers:
        if wanted and f"decoder-1b-dims-{n}-layers" not in wanted:
            continue
        sub = os.path.join(folder, f"l{n}")
        os.makedirs(sub, exist_ok=True)
        yield (f"decoder-1b-dims-{n}-layers", build("1b", n, 127, sub), "rngd",
               ["--quantize", "bf16"], 120.0 * n / 16, None)
        shutil.rmtree(sub)  # gigabytes of weights: one model on disk at a time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="run only these cases")
    parser.add_argument("--scaling", action="store_true", help="only the decoder cases")
    parser.add_argument("--layers", type=int, action="append", help="decoder layer counts")
    parser.add_argument("--large", action="store_true",
                        help="only the 70B decoder over 8 RNGD cards")
    parser.add_argument("--no-warmup", action="store_true",
                        help="time the first run of each case (no untimed run before it)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="time each case N times and give the medians (the machine's "
                             "other load moves single runs)")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        layers = () if args.large else tuple(args.layers or LAYERS)
        cases = LARGE if args.large else [] if args.scaling else list(CASES)
        rows = []
        for case in itertools.chain(cases, scaling_cases(tmp, layers, args.case)):
            if args.case and case[0] not in args.case:
                continue
            row = run_case(*case, warmup=not args.no_warmup, repeat=max(1, args.repeat))
            rows.append(row)
            print(json.dumps(row, sort_keys=True), flush=True)
            if "error" in row:
                ok = False
                continue
            ok &= row["compile_s"] <= row["budget_s"] and \
                row["peak_rss_gb"] <= row["memory_goal_gb"]
            if "ratio" in row:
                ok &= 0.5 <= row["ratio"] <= 2.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

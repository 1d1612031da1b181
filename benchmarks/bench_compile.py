"""Compile time and estimated latency against published MLPerf figures.

    python benchmarks/bench_compile.py            # all cases
    python benchmarks/bench_compile.py --case resnet50-warboy-2pe

Each case runs ``npuc compile`` as a whole process (imports and model building included)
and reads the estimate from its summary.json. Latency is compared with the MLPerf
single-stream p90 result where one is published (CHIPS.md: Warboy 2PE ResNet-50 0.712 ms,
ATOM ResNet-50 0.239 ms); the goal is an estimate within 0.5x to 2x.
"""

from __future__ import annotations

import argparse
import json
import os
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


def run_case(name, model, target, extra, budget, mlperf_ms) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        cmd = [sys.executable, "-m", "npuc.compiler.cli", "compile", model, "--target", target,
               "-o", out, *extra]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"case": name, "error": proc.stderr.strip()}
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
    est_ms = summary["estimated_latency_s"] * 1e3
    row = {"case": name, "compile_s": round(seconds, 2), "budget_s": budget,
           "estimated_ms": round(est_ms, 4), "precision": summary["estimated_at"],
           "sram_peak_bytes": summary["sram_peak_bytes"]}
    if mlperf_ms:
        row.update(mlperf_ms=mlperf_ms, ratio=round(est_ms / mlperf_ms, 3))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="run only these cases")
    args = parser.parse_args()
    ok = True
    for case in CASES:
        if args.case and case[0] not in args.case:
            continue
        row = run_case(*case)
        print(json.dumps(row, sort_keys=True))
        if "error" in row:
            ok = False
            continue
        ok &= row["compile_s"] <= row["budget_s"]
        if "ratio" in row:
            ok &= 0.5 <= row["ratio"] <= 2.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""npuc's serving estimates beside every published figure of the K-Cloud chips.

    python benchmarks/bench_serving.py                 # every figure (several minutes)
    python benchmarks/bench_serving.py --case rngd-llama3.1-8b --json out.json

Each row is one published figure (sources in shared/CHIPS.md: MLPerf results and
FuriosaAI's LLM comparison) with the estimate of ``npuc estimate`` for the same model,
chip, precision and workload, and the ratio estimate / published (for a latency,
published / estimate, so that a ratio above 1 always means npuc is optimistic). The
goal is every ratio within 0.5..2. No parameter of npuc was set from any of these
figures: see docs/compile.md, "Serving estimates and how well they match".

Models: the zoo's ``resnet50``, ``ssd-mobilenet``, ``bert-large`` (random weights) and
``llama3.1-8b``/``llama3.1-70b`` (external zero weights, never read). MLPerf entries run
int8 on these NPUs; the LLM figures are FP8.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from npuc.compiler.serving.decoder import Workload
from npuc.compiler.serving.estimate import estimate

BATCHES = (1, 2, 4, 8, 16)

def _mlperf(case: str, model: str, target: str, scenario: str, published: float,
            source: str) -> tuple:
    """An int8 MLPerf figure: ``offline`` (samples/s over the batches tried) or
    ``single`` (single-stream latency at batch 1)."""
    if scenario == "offline":
        return (case, model, target, {"quantize": "int8", "batches": BATCHES},
                "samples_per_s", published, "samples/s", source)
    return (case, model, target, {"quantize": "int8", "batches": (1,)},
            "single_stream_latency_s", published, "s", source)


# (case, model, target, options, figure kind, published value, unit, source)
CASES = [
    ("rngd-llama3.1-8b", "zoo:llama3.1-8b", "rngd",
     {"quantize": "fp8", "workload": Workload(128, 4096)},
     "output_tokens_per_s", 3935.0, "tokens/s", "L1: 1 card, FP8, 128 in / 4096 out"),
    ("rngd-llama3.1-70b-x8", "zoo:llama3.1-70b", "rngd",
     {"quantize": "fp8", "workload": Workload(2048, 128), "chips": 8},
     "output_tokens_per_s", 957.0, "tokens/s", "L1: 8 cards, FP8, 2048 in / 128 out"),
    _mlperf("warboy-resnet50-offline", "zoo:resnet50", "warboy-2pe", "offline", 2758.0,
            "W7: MLPerf v2.0 offline"),
    _mlperf("warboy-resnet50-single", "zoo:resnet50", "warboy-2pe", "single", 0.712e-3,
            "W7: MLPerf v2.0 single-stream p90"),
    _mlperf("warboy-ssd-mobilenet-single", "zoo:ssd-mobilenet", "warboy-2pe", "single",
            0.364e-3, "W7: MLPerf v2.0 single-stream p90"),
    _mlperf("atom-resnet50-offline", "zoo:resnet50", "atom", "offline", 7246.0,
            "A3: MLPerf v3.0 offline"),
    _mlperf("atom-resnet50-single", "zoo:resnet50", "atom", "single", 0.239e-3,
            "A3: MLPerf v3.0 single-stream p90"),
    _mlperf("atom-bert-large-single", "zoo:bert-large", "atom", "single", 4.30e-3,
            "A3: MLPerf v3.0 BERT-99 single-stream p90"),
    _mlperf("x220-compact-resnet50-offline", "zoo:resnet50", "x220-compact", "offline",
            6769.0, "S1: MLPerf v2.1 offline"),
    _mlperf("x220-enterprise-resnet50-offline", "zoo:resnet50", "x220-enterprise",
            "offline", 13101.0, "S1: MLPerf v2.1 offline"),
]


def run_case(case) -> dict:
    name, model, target, options, kind, published, unit, source = case
    t0 = time.perf_counter()
    result = estimate(model, target, **options)
    value = result[kind]
    latency = unit == "s"
    ratio = published / value if latency else value / published
    row = {"case": name, "target": target, "model": model, "figure": kind,
           "published": published, "estimate": value, "unit": unit, "ratio": ratio,
           "source": source, "seconds": round(time.perf_counter() - t0, 1)}
    if result["kind"] == "decoder":
        s = result["serving"]
        row["detail"] = (f"tp {s['tp']} pp {s['pp']} dp {s['dp']}, {s['sequences_total']} "
                         f"sequences, TTFT {result['time_to_first_token_s'] * 1e3:.0f} ms, "
                         f"TPOT {result['time_per_output_token_s'] * 1e3:.1f} ms")
    elif kind == "samples_per_s":
        row["detail"] = f"best batch {result['offline']['batch']}"
    return row


def _show(value, unit) -> str:
    return f"{value * 1e3:.3f} ms" if unit == "s" else f"{value:,.0f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="run only these cases")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()
    rows = []
    print(f"{'case':34} {'published':>15} {'npuc':>15} {'ratio':>6}  detail")
    for case in CASES:
        if args.case and case[0] not in args.case:
            continue
        row = run_case(case)
        rows.append(row)
        flag = "" if 0.5 <= row["ratio"] <= 2 else "  OUT OF 0.5..2"
        print(f"{row['case']:34} {_show(row['published'], row['unit']):>15} "
              f"{_show(row['estimate'], row['unit']):>15} {row['ratio']:6.2f}  "
              f"{row.get('detail', '')}{flag}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1, sort_keys=True)
    return 0 if all(0.5 <= r["ratio"] <= 2 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

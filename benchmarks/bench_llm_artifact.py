"""A decoder's prefill and decode programs in one artifact, and greedy decoding verified.

    python benchmarks/bench_llm_artifact.py --model small --steps 8
    python benchmarks/bench_llm_artifact.py                      # Llama-3.2-1B's dimensions
    python benchmarks/bench_llm_artifact.py --layers 2 --case rngd:bf16
    python benchmarks/bench_llm_artifact.py --onnx P.onnx D.onnx --max-seq 256 --steps 8
    python benchmarks/bench_llm_artifact.py --model small --decode-batch 1,8,32,64

The decoder is ``zoo:llama-small`` with the chosen dimensions, written once in its two
exported forms (prefill of ``--prefill`` tokens with its cache, decode of one token after
``--max-seq - 1`` cached positions) as ONNX files with external data. Each case compiles
both into one artifact (``npuc compile PREFILL --decode-model DECODE --max-seq N
--last-logits``) in a fresh process and prints:

- compile time (wall and CPU) and peak RSS beside the goal (2x the blob + 2 GB); the one
  weight blob and the KV cache (device state);
- per program (prefill, decode) the estimate beside its bandwidth floor (the program's
  DRAM bytes over the chip's DRAM bandwidth), the host-link time and what runs on the CPU;
  with ``--decode-batch B,...`` a decode program per batch (the decode form written with
  a dynamic batch axis), each with its estimate per token;
``--onnx PREFILL DECODE`` takes the two forms from ONNX files instead, as an exporter
wrote them (``export_llama.py`` writes Llama decoders from transformers that way; the
decode form's past holds ``--max-seq - 1`` positions).

- with ``--steps K``: the prompt through the simulated prefill program and K greedy
  decode steps through the simulated decode program with its cache, against onnxruntime:
  tokens that agree, near-ties, and the lowest logits SQNR.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_llm import CASES, DIMS, write  # noqa: E402


def child(prefill: str, decode: str, target: str, precision: str, max_seq: int,
          steps: int, decode_batch: str | None = None) -> None:
    """Compile (and verify) the artifact; one JSON line of figures."""
    import collections

    from npuc.compiler.decode_verify import check_steps
    from npuc.compiler.decoder_artifact import compile_decoder

    t0 = time.perf_counter()
    built = compile_decoder(prefill, target, max_seq, decode, quantize=precision,
                            last_logits=True, keep_reference=steps > 0,
                            decode_batch=decode_batch)
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak, cpu_s = usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime
    programs = []
    for role, r in zip(built.roles, built.results):
        s = r.summary
        cpu = collections.Counter(op for layer in s["layers"] if layer["device"] == "cpu"
                                  for op in layer["ops"])
        programs.append({"role": role, "batch": s["batch"], "tokens": s["tokens_per_run"],
                         "estimate_s": s["estimated_latency_s"],
                         "floor_s": s["dram_traffic_bytes"] / s["dram_bandwidth_bytes_per_s"],
                         "traffic_bytes": s["dram_traffic_bytes"],
                         "host_s": s.get("host_transfer_s", 0.0), "cpu": dict(cpu)})
    out = {"compile_s": seconds, "cpu_s": cpu_s, "peak_rss": peak,
           "blob_bytes": len(built.weights), "kv_bytes": built.manifest["kv_cache"]["bytes"],
           "programs": programs}
    if steps:
        v = check_steps(built, steps)
        out["verify"] = {"passed": v.passed, "agree": sum(s["token_agrees"] for s in v.steps),
                         "steps": len(v.steps), "near_ties": v.near_ties,
                         "min_sqnr_db": min(s["sqnr_db"] for s in v.steps)}
    print(json.dumps(out))


def build(model: str, layers: int | None, prefill: int, max_seq: int, folder: str,
          dynamic: bool = False):
    """The prefill and decode forms, written with external data; their paths (the decode
    form's batch axis dynamic when ``dynamic``)."""
    dims = dict(DIMS[model])
    if layers is not None:
        dims["layers"] = layers
    first = write(folder, "prefill", use_cache=True, sequence=prefill, **dims)
    return [first, write(folder, "decode", share=first, use_cache=True, sequence=1,
                         past=max_seq - 1, batch=None if dynamic else 1, **dims)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(DIMS), default="1b")
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--prefill", type=int, default=64, help="prompt tokens (default 64)")
    parser.add_argument("--max-seq", type=int, default=128, help="cache positions (128)")
    parser.add_argument("--steps", type=int, default=0, help="greedy decode steps verified")
    parser.add_argument("--case", action="append", help="target:precision (repeatable)")
    parser.add_argument("--onnx", nargs=2, metavar=("PREFILL", "DECODE"),
                        help="the two forms as ONNX files (instead of the zoo decoder)")
    parser.add_argument("--decode-batch", metavar="B[,B...]",
                        help="a decode program per batch size (e.g. 1,8,32,64)")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        p, d, t, prec, m, s, b = args.child
        child(p, d, t, prec, int(m), int(s), b or None)
        return 0
    cases = [tuple(c.split(":")) for c in args.case] if args.case else CASES
    with tempfile.TemporaryDirectory() as tmp:
        if args.onnx:
            prefill, decode = args.onnx
            print(f"{prefill} and {decode}: cache of {args.max_seq} positions")
        else:
            prefill, decode = build(args.model, args.layers, args.prefill, args.max_seq, tmp,
                                    dynamic=bool(args.decode_batch))
            print(f"{args.model} (layers {args.layers or DIMS[args.model]['layers']}): "
                  f"prefill {args.prefill} tokens, cache of {args.max_seq} positions")
        for target, precision in cases:
            proc = subprocess.run([sys.executable, __file__, "--child", prefill, decode, target,
                                   precision, str(args.max_seq), str(args.steps),
                                   args.decode_batch or ""],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{target}:{precision} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            _print(f"{target}:{precision}", json.loads(proc.stdout.strip().splitlines()[-1]))
    return 0


def _print(case: str, r: dict) -> None:
    goal = 2 * r["blob_bytes"] + 2e9  # 2x the weights at the compiled precision + 2 GB
    print(f"{case}: compile {r['compile_s']:.1f} s ({r['cpu_s']:.1f} s of CPU), peak "
          f"{r['peak_rss'] / 1e9:.2f} GB (goal {goal / 1e9:.2f}), one "
          f"blob {r['blob_bytes'] / 1e6:.1f} MB, KV cache {r['kv_bytes'] / 1e6:.2f} MB")
    for p in r["programs"]:
        print(f"  {p['role']:<8} batch {p['batch']:<3} est {p['estimate_s'] * 1e3:9.3f} ms "
              f"({p['estimate_s'] / p['tokens'] * 1e3:.4f} per token)  floor "
              f"{p['floor_s'] * 1e3:9.3f} ms  x{p['estimate_s'] / p['floor_s']:.2f}  host "
              f"{p['host_s'] * 1e3:.3f} ms  cpu {p['cpu'] or '-'}")
    v = r.get("verify")
    if v:
        print(f"  greedy decode: {v['agree']}/{v['steps']} tokens agree, {v['near_ties']} "
              f"near-ties, lowest logits SQNR {v['min_sqnr_db']:.1f} dB -> "
              f"{'passed' if v['passed'] else 'FAILED'}")


if __name__ == "__main__":
    sys.exit(main())

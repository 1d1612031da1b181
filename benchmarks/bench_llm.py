"""Decoders on the data-centre chips: compile time, peak memory, decode step vs the floor.

    python benchmarks/bench_llm.py                       # Llama-3.2-1B's dimensions
    python benchmarks/bench_llm.py --layers 2            # fewer layers, same widths
    python benchmarks/bench_llm.py --model small         # hidden 512, 4 layers, vocab 32000

The decoder is ``zoo:llama-small`` with the chosen dimensions, in its decode form (one new
token, ``--past`` cached positions, batch 1), written once to an ONNX file with external
data. Each case compiles that file in a fresh process, so that its peak resident memory
is the compile's own (the model's load included), and prints:

- compile time and peak RSS, beside the goal: at most 2x the weights at the compiled
  precision + 2 GB;
- the weights and the step's DRAM bytes (what the NPU groups read and write);
- the estimated decode step beside the bandwidth floor, the step's DRAM bytes over the
  chip's DRAM bandwidth; the goal on rngd is at most 1.3x the floor;
- what runs on the host CPU, if anything, and the host-link time.

Cases: rngd at bf16 and fp8, atom at fp16.

``--artifact`` (the rest of the options are ``bench_llm_artifact.py``'s) compiles the
prefill and decode programs into one artifact with the KV cache as device state and, with
``--steps K``, checks K greedy decode steps token by token against onnxruntime:

    python benchmarks/bench_llm.py --artifact --model small --steps 8
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

DIMS = {
    "1b": dict(vocab_size=128256, hidden=2048, layers=16, heads=32, kv_heads=8,
               intermediate=8192, rope_theta=500000.0, eps=1e-5),
    "small": dict(vocab_size=32000, hidden=512, layers=4, heads=8, kv_heads=2,
                  intermediate=1376),
}
CASES = [("rngd", "bf16"), ("rngd", "fp8"), ("atom", "fp16")]


def child(path: str, target: str, precision: str) -> None:
    """Compile ``path`` and print one JSON line of figures (run in a fresh process)."""
    import collections

    import npuc

    t0 = time.perf_counter()
    r = npuc.compile(path, target, quantize=precision, keep_reference=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    s = r.summary
    by_name = {n.name: n for n in r.graph.nodes}
    cpu = collections.Counter(by_name[n].op_type for g in r.schedule.groups
                              if g.device == "cpu" for n in g.nodes)
    traffic = s["dram_traffic_bytes"]
    floor = traffic / s["dram_bandwidth_bytes_per_s"]
    print(json.dumps({
        "target": target, "precision": precision, "compile_s": seconds,
        "steps_s": r.seconds, "peak_rss": peak, "weights_bytes": s["weights_bytes"],
        "traffic_bytes": traffic, "estimate_s": s["estimated_latency_s"],
        "host_transfer_s": s.get("host_transfer_s", 0.0), "floor_s": floor,
        "cpu_nodes": dict(cpu), "groups": s["groups"]}))


def write(folder: str, name: str, share: str | None = None, batch: int | None = 1,
          **options) -> str:
    """``zoo:llama-small`` with ``options`` written to ``folder`` as ``name``.onnx with
    external data; the path. Past 2 GB of float32 weights (protobuf's limit) the zoo keeps
    them external (``weights.bin`` in ``folder/name``): they are filled here with seeded
    random values (zeros would all be one tensor to a compiler that stores each content
    once), or, with ``share`` (another such model's .onnx, the same weights), the model is
    written beside that one, reading its file. ``batch``: None for a dynamic batch axis."""
    import onnx

    from npuc import zoo

    if zoo.has_external_weights("llama-small", **options):
        if share:
            path = os.path.join(os.path.dirname(share), f"{name}.onnx")
            with open(path, "wb") as f:
                f.write(zoo.build("llama-small", batch=batch, **options).SerializeToString())
            return path
        path = zoo.model_path("llama-small", os.path.join(folder, name), batch=batch, **options)
        _fill_random(os.path.join(os.path.dirname(path), "weights.bin"))
        return path
    proto = zoo.build("llama-small", batch=batch, **options)
    path = os.path.join(folder, f"{name}.onnx")
    onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{name}.data", size_threshold=1024)
    return path


def _fill_random(path: str, chunk: int = 1 << 24) -> None:
    """Overwrite the float32 file ``path`` with U(-0.035, 0.035) values (std 0.02), seeded."""
    import numpy as np

    rng = np.random.default_rng(0)
    count = os.path.getsize(path) // 4
    with open(path, "r+b") as f:
        for start in range(0, count, chunk):
            values = rng.random(min(chunk, count - start), dtype=np.float32)
            values -= np.float32(0.5)
            values *= np.float32(0.07)
            f.write(values.tobytes())


def build(model: str, layers: int | None, past: int, folder: str) -> str:
    dims = dict(DIMS[model])
    if layers is not None:
        dims["layers"] = layers
    return write(folder, "decoder", past=past, sequence=1, **dims)


def main() -> int:
    if "--artifact" in sys.argv[1:]:
        sys.argv.remove("--artifact")
        sys.path.insert(0, os.path.dirname(__file__))
        from bench_llm_artifact import main as artifact

        return artifact()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(DIMS), default="1b")
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--past", type=int, default=127)
    parser.add_argument("--case", action="append", help="target:precision (repeatable)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    cases = [tuple(c.split(":")) for c in args.case] if args.case else CASES
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = build(args.model, args.layers, args.past, tmp)
        print(f"built {args.model} (layers {args.layers or DIMS[args.model]['layers']}, "
              f"past {args.past}) in {time.perf_counter() - t0:.1f} s")
        print(f"{'case':<12}{'compile s':>10}{'peak GB':>9}{'goal GB':>9}{'weights MB':>11}"
              f"{'step MB':>9}{'est ms':>9}{'floor ms':>9}{'x floor':>8}{'host ms':>8}  cpu")
        for target, precision in cases:
            proc = subprocess.run([sys.executable, __file__, "--child", path, target,
                                   precision], capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{target}:{precision} failed: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            goal = 2 * r["weights_bytes"] + 2e9
            print(f"{target + ':' + precision:<12}{r['compile_s']:>10.1f}"
                  f"{r['peak_rss'] / 1e9:>9.2f}{goal / 1e9:>9.2f}"
                  f"{r['weights_bytes'] / 1e6:>11.1f}{r['traffic_bytes'] / 1e6:>9.1f}"
                  f"{r['estimate_s'] * 1e3:>9.3f}{r['floor_s'] * 1e3:>9.3f}"
                  f"{r['estimate_s'] / r['floor_s']:>8.2f}{r['host_transfer_s'] * 1e3:>8.3f}"
                  f"  {r['cpu_nodes'] or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``npuc run MODEL --inputs in.npz -o out.npz``: execute a model with npuc's executor."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("run", help="run a model on inputs with npuc's reference executor",
                       description="Run MODEL with npuc's executor. Inputs come from an .npz "
                                   "file (one array per input name); without --inputs, random "
                                   "inputs are generated (and said so).")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--inputs", metavar="NPZ", help="an .npz file of named input arrays")
    p.add_argument("-o", "--output", metavar="NPZ", help="write the outputs to this .npz file")
    p.add_argument("--profile", action="store_true", help="print time per operator type")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run N times and report the fastest (default 1)")
    p.add_argument("-O", dest="opt_level", type=int, default=2, choices=[0, 1, 2, 3],
                   metavar="N", help="optimize the graph first, as compile does, at level 0-3 "
                                     "(default 2: fused epilogues, GELU, LayerNorm, attention; "
                                     "-O0 runs the graph as imported)")
    p.add_argument("--products", choices=("float32", "float64"), default="float32",
                   help="float products (MatMul, Gemm, Conv, attention): float32 as "
                        "onnxruntime computes them (default), or float64, the IR's "
                        "definition that compiled programs are verified against")
    return p


def run(args) -> int:
    import sys
    import time

    import numpy as np

    from npuc.compiler.executor.inputs import load_inputs, random_inputs
    from npuc.compiler.executor.interpreter import RunStats, execute
    from npuc.compiler.frontend.load import load_model
    from npuc.ir.errors import NpucError
    from npuc.ir.safeio import check_output_file, write_npz

    if args.output:
        check_output_file(args.output)  # before any work
    graph = load_model(args.model)
    if args.opt_level:
        from npuc.compiler.passes.manager import optimize

        graph = optimize(graph, level=args.opt_level, copy=False)
    if args.inputs is not None:
        inputs = load_inputs(args.inputs)
    else:
        print("npuc: note: no --inputs given; running on random inputs", file=sys.stderr)
        inputs = random_inputs(graph)
    if args.repeat < 1:
        raise NpucError("--repeat must be at least 1")
    best = float("inf")
    stats = RunStats()
    for _ in range(args.repeat):
        stats = RunStats()
        t0 = time.perf_counter()
        outputs = execute(graph, inputs, stats=stats, profile=args.profile,
                          products=args.products)
        best = min(best, time.perf_counter() - t0)
    for name, arr in outputs.items():
        arr = np.asarray(arr)
        desc = f"{name}: {arr.dtype}{list(arr.shape)}"
        if arr.size and arr.dtype.kind in "fiub":
            a = arr.astype(np.float64)
            desc += f" min {a.min():.6g} max {a.max():.6g} mean {a.mean():.6g}"
        print(desc)
    print(f"time {best * 1e3:.2f} ms, {stats.nodes_run} nodes, peak intermediate memory "
          f"{_size(stats.peak_bytes)} (+ {_size(stats.constant_bytes)} of weights)")
    if args.profile:
        for op, secs in sorted(stats.per_op_seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {op:24s} {secs * 1e3:9.2f} ms")
    if args.output:
        write_npz(args.output, outputs)
        print(f"wrote {args.output}")
    return 0


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"

"""``npuc compile MODEL --target T -o DIR``: compile a model into a program for a chip."""

from __future__ import annotations

QUANTIZE = ("auto", "int8", "fp8", "bf16", "fp16", "none")


def add_common(p) -> None:
    """The options compile, verify and explain share."""
    p.add_argument("model", metavar="MODEL", help="an .onnx file, an .npuir file or zoo:NAME")
    p.add_argument("--target", "-t", required=True, metavar="T",
                   help="a chip name (npuc targets lists them) or a chip .toml file")
    p.add_argument("-O", dest="opt_level", type=int, default=2, choices=[0, 1, 2, 3],
                   metavar="N", help="optimization level 0-3 (default 2)")
    p.add_argument("--quantize", default="auto", choices=QUANTIZE,
                   help="precision: the chip's preferred one (auto, the default), a given one, "
                        "or none (float32)")
    p.add_argument("--calibration", metavar="PATH|random:N",
                   help="calibration inputs: an .npz file, a folder of them, or random:N")
    p.add_argument("--schedule-in", metavar="JSON",
                   help="a schedule file whose tiles and CPU placements to obey")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="batch size the symbolic batch dimension is fixed to (default 1)")


def add_parser(sub):
    p = sub.add_parser("compile", help="compile a model into a program for an NPU",
                       description="Compile MODEL for a target chip: optimize, quantize, "
                                   "partition, fuse, tile, plan memory and lower. Writes the "
                                   "program, weights, schedule, summary.json and report.html "
                                   "into DIR (all or nothing).")
    add_common(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the output folder")
    p.add_argument("--schedule-out", metavar="JSON", help="also write the schedule here")
    p.add_argument("--layer", action="append", default=[], metavar="NODE=SCHEME",
                   help="mixed precision: compute NODE (a name after optimization) in "
                        "SCHEME (bf16, fp16, fp8, fp8-tensor, w8a16, w4a16[-gN], fp32); "
                        "repeatable")
    from .quantize import add_accuracy_options

    add_accuracy_options(p)
    return p


def run(args) -> int:
    import sys

    from npuc.compiler.driver import compile

    from .quantize import parse_layers

    if args.batch < 1:
        from npuc.ir.errors import NpucError

        raise NpucError("--batch must be at least 1")
    result = compile(args.model, args.target, opt_level=args.opt_level, quantize=args.quantize,
                     calibration=args.calibration, output_dir=args.output,
                     schedule_in=args.schedule_in, schedule_out=args.schedule_out,
                     batch=args.batch, progress=sys.stderr.isatty(),
                     accuracy=args.accuracy, preprocess=args.preprocess,
                     layers=parse_layers(args.layer) or None)
    s = result.summary
    print(f"compiled {s['model']} for {s['target']} ({s['precision']}, estimated at "
          f"{s['estimated_at']}): {s['groups']} groups, {s['nodes_on_npu']} nodes on the NPU, "
          f"{s['nodes_on_cpu']} on the CPU")
    print(f"estimated latency {s['estimated_latency_s'] * 1e3:.4f} ms, SRAM peak "
          f"{s['sram_peak_bytes']} of {s['sram_bytes']} bytes, DRAM traffic "
          f"{s['dram_traffic_bytes']} bytes")
    _print_accuracy(result)
    print(f"wrote {args.output}")
    return 0


def _print_accuracy(result) -> None:
    """Hazards as warnings on the terminal; the accuracy recovery's kept steps."""
    import sys

    from npuc.ir.decisions import log_of

    for d in log_of(result.graph):
        if d.action == "hazard":
            print(f"npuc: warning: {d.subject}: {d.reason}", file=sys.stderr)
        elif d.stage == "accuracy" and d.data.get("kept", True):
            print(f"accuracy: {d.subject}: {d.action}: {d.reason}")

"""``npuc compile MODEL --target T -o DIR``: compile a model into a program for a chip."""

from __future__ import annotations

from .options import (
    add_accuracy_options,
    add_chips,
    add_common,
    add_fanout,
    fanout_of,
    parse_layers,
)


def add_parser(sub):
    p = sub.add_parser("compile", help="compile a model into a program for an NPU",
                       description="Compile MODEL for a target chip: optimize, quantize, "
                                   "partition, fuse, tile, plan memory and lower. Writes the "
                                   "program, weights, schedule, summary.json and report.html "
                                   "into DIR (all or nothing).")
    add_common(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the output folder")
    p.add_argument("--schedule-out", metavar="JSON", help="also write the schedule here")
    add_fanout(p)
    add_chips(p)
    p.add_argument("--layer", action="append", default=[], metavar="NODE=SCHEME",
                   help="mixed precision: compute NODE (a name after optimization) in "
                        "SCHEME (bf16, fp16, fp8, fp8-tensor, w8a16, w4a16[-gN], fp32); "
                        "repeatable")
    from .decoder import add_decoder_options

    add_accuracy_options(p)
    add_decoder_options(p)
    return p


def _compile_chips(args) -> int:
    from npuc.compiler.multichip.compile import compile_chips
    from npuc.compiler.pipeline import inputs_of
    from npuc.ir.errors import NpucError
    from npuc.ir.safeio import check_output_dir, write_dir

    if args.schedule_in or args.schedule_out:
        raise NpucError("--schedule-in and --schedule-out work on one chip; not with --chips")
    protect = inputs_of(args.model, args.calibration)
    check_output_dir(args.output, protect=protect)  # refused before any work, never after
    result = compile_chips(args.model, args.target, args.chips, opt_level=args.opt_level,
                           quantize=args.quantize, calibration=args.calibration,
                           batch=args.batch, parallel=args.parallel, keep_reference=False)
    write_dir(args.output, result.files(), protect=protect)
    m = result.manifest
    print(f"compiled {args.model} for {m['chips']} x {m['target']} ({m['precision']}), "
          f"{m['parallelism']} stages over {m['link']}")
    for stage in m["stages"]:
        print(f"  chip {stage['chip']}: {stage['nodes']} nodes, estimated "
              f"{stage['estimated_latency_s'] * 1e3:.4f} ms, sends "
              f"{stage['send_s'] * 1e3:.4f} ms, weights {stage['weights_bytes']} bytes")
    attention = m.get("attention", [])
    refused = [d for d in attention if d["action"] != "split by heads"]
    if attention:  # why an attention was not split (all alike, as a rule): the first
        print(f"attention split by heads: {len(attention) - len(refused)} of "
              f"{len(attention)}" + (f"; {refused[0]['attention']}: {refused[0]['reason']}"
                                     if refused else ""))
    print(f"estimated latency {m['estimated_latency_s'] * 1e3:.4f} ms through all chips, "
          f"{m['pipelined_inputs_per_s']:.1f} inputs/s pipelined")
    print(f"wrote {args.output}")
    return 0


def run(args) -> int:
    import sys

    from npuc.compiler.driver import compile
    from npuc.ir.errors import NpucError


    if args.batch < 1:
        raise NpucError("--batch must be at least 1")
    if args.chips < 1:
        raise NpucError("--chips must be at least 1")
    from .decoder import check_decoder_args, run_compile

    check_decoder_args(args)
    if args.chips > 1:
        return _compile_chips(args)
    if args.max_seq is not None:
        return run_compile(args)
    result = compile(args.model, args.target, opt_level=args.opt_level, quantize=args.quantize,
                     calibration=args.calibration, output_dir=args.output,
                     schedule_in=args.schedule_in, schedule_out=args.schedule_out,
                     batch=args.batch, progress=sys.stderr.isatty(), shapes=args.shape,
                     keep_reference=False, fanout=fanout_of(args), accuracy=args.accuracy,
                     preprocess=args.preprocess, layers=parse_layers(args.layer) or None)
    from npuc.compiler.driver import warnings_of

    for label, r in zip(getattr(result, "labels", [None]), getattr(result, "results", [result])):
        for line in warnings_of(r.graph):
            print(line, file=sys.stderr)
        _print_summary(r.summary, label)
        _print_accuracy(r)
    print(f"wrote {args.output}")
    return 0


def _print_summary(s: dict, label: str | None) -> None:
    if label:
        print(f"program for {label}:")
    print(f"compiled {s['model']} for {s['target']} ({s['precision']}, estimated at "
          f"{s['estimated_at']}): {s['groups']} groups, {s['nodes_on_npu']} nodes on the NPU, "
          f"{s['nodes_on_cpu']} on the CPU")
    print(f"estimated latency {s['estimated_latency_s'] * 1e3:.4f} ms, SRAM peak "
          f"{s['sram_peak_bytes']} of {s['sram_bytes']} bytes, DRAM traffic "
          f"{s['dram_traffic_bytes']} bytes")


def _print_accuracy(result) -> None:
    """The accuracy recovery's kept steps (hazards are printed as warnings)."""
    from npuc.ir.decisions import log_of

    for d in log_of(result.graph):
        if d.stage == "accuracy" and d.data.get("kept", True):
            print(f"accuracy: {d.subject}: {d.action}: {d.reason}")

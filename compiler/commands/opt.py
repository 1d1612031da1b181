"""``npuc opt IN -O2 -o OUT``: run passes over a model, like ``mlir-opt``."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("opt", help="optimize a model with a pass pipeline or a level",
                       description="Run passes over MODEL (.onnx, .npuir or zoo:NAME) and "
                                   "write OUT (.onnx or .npuir; '-' or no -o prints text "
                                   "IR). Choose -O0..-O3 (default -O2) or -p PIPELINE.")
    p.add_argument("model", metavar="MODEL", nargs="?")
    p.add_argument("-o", "--output", metavar="OUT", default="-")
    p.add_argument("-O", dest="level", type=int, choices=range(4), metavar="LEVEL",
                   help="optimization level 0-3 (see --list-passes)")
    p.add_argument("-p", "--passes", metavar="PIPELINE",
                   help='comma-separated passes, e.g. "fold-constants,fuse-conv-bn,dce"')
    p.add_argument("--list-passes", action="store_true",
                   help="list the passes and the levels, then exit")
    p.add_argument("--print-after", metavar="PASS", action="append",
                   help="print the IR after PASS ('all' for every pass); repeatable")
    p.add_argument("--dump", metavar="DIR", help="write the IR after every pass into DIR")
    p.add_argument("--time", action="store_true", help="report the time of each pass")
    p.add_argument("--verify-each", action="store_true", help="verify the IR after every pass")
    p.add_argument("--decisions", action="store_true",
                   help="print the decision log after the IR, one '# [pass] node: what - "
                        "why' comment a line (fusions made and refused, with the reason)")
    from .options import add_shape_option

    add_shape_option(p)
    return p


def run(args) -> int:
    import sys

    from npuc.ir.errors import NpucError

    if args.list_passes:
        from npuc.compiler.passes import LEVELS, registered

        passes = registered()
        width = max(len(n) for n in passes) + 2
        for name, cls in passes.items():
            print(f"{name:<{width}}{cls.description()}")
        print()
        for level, pipeline in LEVELS.items():
            print(f"-O{level}: {pipeline or '(nothing)'}")
        return 0
    if args.model is None:
        raise NpucError("opt needs a MODEL (or --list-passes)")
    if args.level is not None and args.passes:
        raise NpucError("give -O LEVEL or -p PIPELINE, not both")
    from npuc.compiler.frontend.load import load_model, save_model
    from npuc.compiler.passes import PassManager, level_pipeline, parse_pipeline

    pipeline = parse_pipeline(args.passes) if args.passes is not None else \
        level_pipeline(2 if args.level is None else args.level)
    print_after = None
    names = {p.name for p in pipeline}
    for name in args.print_after or ():
        if name != "all" and name not in names:
            raise NpucError(f"--print-after {name}: no pass of that name in the pipeline "
                            f"({', '.join(sorted(names)) or 'empty'})")
    if args.print_after:
        print_after = "all" if "all" in args.print_after else set(args.print_after)
    if args.output != "-":
        from npuc.ir.safeio import check_output_file

        check_output_file(args.output)  # before any work
    graph = load_model(args.model)
    from .options import specialise_from_args

    graph = specialise_from_args(graph, args)
    before = len(graph)
    manager = PassManager(pipeline, verify=args.verify_each, timing=args.time,
                          print_after=print_after, dump_dir=args.dump,
                          repeat_until_stable=args.level == 3)
    graph = manager.run(graph)
    if args.output == "-":
        from npuc.ir.printer import print_graph

        sys.stdout.write(print_graph(graph))
    else:
        save_model(graph, args.output)
        print(f"wrote {args.output} ({before} -> {len(graph)} nodes)", file=sys.stderr)
    if args.decisions:
        from npuc.ir.decisions import log_of

        for d in log_of(graph):  # comments, so that the printed IR still parses
            sys.stdout.write(f"# {d}\n")
    return 0

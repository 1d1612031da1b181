"""``npuc convert IN -o OUT``: ONNX to text IR and back, or text to text."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("convert", help="convert a model between ONNX and npuc text IR",
                       description="Convert MODEL (.onnx, .npuir or zoo:NAME) to OUT, whose "
                                   "suffix chooses the format (.onnx or .npuir; '-' prints "
                                   "text IR). Large constants of a .npuir file go to OUT.bin.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    return p


def run(args) -> int:
    from npuc.compiler.frontend.load import load_model, save_model

    if args.output != "-":
        from npuc.ir.safeio import check_output_file

        check_output_file(args.output)  # before any work
    graph = load_model(args.model)
    if args.output == "-":
        import sys

        from npuc.ir.printer import print_graph

        sys.stdout.write(print_graph(graph))
        return 0
    save_model(graph, args.output)
    print(f"wrote {args.output} ({len(graph)} nodes)")
    return 0

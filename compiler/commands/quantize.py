"""``npuc quantize MODEL --target T --calibration DATA -o OUT``: post-training quantization.

DATA is what ``--calibration`` of compile and verify takes (one loader serves all three):
an ``.npz`` file (input name -> a batch along axis 0), an ``.npy`` or a ``.txt`` file of
token ids, images (with ``--preprocess``), ``.wav`` audio, a folder of any of those, or
``random:N`` for N random inputs, which gives poor ranges and says so. OUT is ``.npuir``
(the quantized IR) or ``.onnx`` (QDQ ONNX for onnxruntime).
"""

from __future__ import annotations

import sys

from .options import (
    add_accuracy_options,
    add_fanout,
    add_shape_option,
    fanout_of,
    parse_layers,
    specialise_from_args,
)


def add_parser(sub):
    p = sub.add_parser("quantize", help="quantize a model for a target with calibration data",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--target", "-t", default="generic-npu", metavar="T")
    p.add_argument("--calibration", "-c", required=True, metavar="PATH|random:N")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--method", default="auto",
                   choices=["auto", "minmax", "percentile", "entropy", "mse"])
    p.add_argument("--precision", choices=["int8", "fp8", "bf16", "fp16"], default=None,
                   help="default: the target's preferred precision")
    p.add_argument("--keep-float", action="append", default=[], metavar="NODE",
                   help="keep this node in float (repeatable)")
    p.add_argument("--layer", action="append", default=[], metavar="NODE=SCHEME",
                   help="mixed precision: compute NODE in SCHEME (int8, fp8, fp8-tensor, "
                        "bf16, fp16, w8a16, w4a16, w4a16-g32/-g64/-g128, fp32); repeatable")
    p.add_argument("--sensitivity", type=int, default=0, metavar="K",
                   help="keep the K layers that lose the most accuracy in float")
    p.add_argument("--smoothquant", default="0.5", metavar="ALPHA|search|off",
                   help="SmoothQuant strength for MatMul inputs (default 0.5)")
    add_accuracy_options(p)
    p.add_argument("--report", action="store_true",
                   help="print layer-by-layer SQNR and cosine similarity")
    add_shape_option(p)
    add_fanout(p)
    return p


def load_calibration(spec: str, graph, preprocess=None) -> list[dict]:
    """Calibration samples from ``spec`` (see the module docstring)."""
    from npuc.compiler.samples import load_samples

    return load_samples(spec, graph, preprocess)


def _smoothquant(text: str):
    from npuc.ir.errors import NpucError

    if text in ("off", "none"):
        return None
    if text == "search":
        return "search"
    try:
        return float(text)
    except ValueError:
        raise NpucError(f"--smoothquant {text}: give a number, search or off") from None


def run(args) -> int:
    from npuc.compiler.frontend.load import load_model, save_model
    from npuc.compiler.quantize import export_qdq, format_report, quantize, report
    from npuc.compiler.quantize.requirement import DEFAULT
    from npuc.ir.decisions import log_of
    from npuc.ir.errors import NpucError

    if not args.output.endswith((".npuir", ".onnx")):
        raise NpucError(f"{args.output}: unknown output format; use .npuir or .onnx (QDQ)")
    from npuc.ir.safeio import check_output_file


    check_output_file(args.output)  # before any work
    from npuc.compiler.quantize.scheme import scheme_for
    from npuc.targets import get_target

    target = get_target(args.target)
    scheme = scheme_for(target, args.precision)  # a wrong target fails before any work
    if args.sensitivity < 0:
        raise NpucError(f"--sensitivity must be 0 or more, not {args.sensitivity}")
    layers = parse_layers(args.layer)
    graph = load_model(args.model)

    graph = specialise_from_args(graph, args)
    node_names = {n.name for n in graph.nodes}
    for name in args.keep_float:
        if name not in node_names:
            import difflib

            close = difflib.get_close_matches(name, sorted(node_names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise NpucError(f"--keep-float {name}: {args.model} has no node of that name{hint}")
    from npuc.compiler.quantize.api import check_finite_samples, check_finite_weights

    if scheme.precision in ("int8", "fp8"):
        check_finite_weights(graph)
    batches = load_calibration(args.calibration, graph, args.preprocess)
    check_finite_samples(batches, args.calibration)
    accuracy = args.accuracy
    if accuracy == "auto":
        accuracy = None if args.calibration.startswith("random:") else DEFAULT
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantize(graph, target, batches, method=args.method,
                     precision=args.precision, keep_float=args.keep_float,
                     sensitivity=args.sensitivity, progress=sys.stderr.isatty(),
                     fanout=fanout_of(args), accuracy=accuracy, layers=layers,
                     smoothquant=_smoothquant(args.smoothquant))
    if args.output.endswith(".onnx"):
        export_qdq(q, args.output)
    else:
        save_model(q, args.output)
    scheme = q.meta["quantize"]["scheme"]
    print(f"wrote {args.output} ({len(q)} nodes, {scheme.precision} for {scheme.target}, "
          f"{len(batches)} calibration samples)")
    for d in log_of(q):
        if d.action == "hazard":
            print(f"npuc: warning: {d.subject}: {d.reason}", file=sys.stderr)
        elif d.stage == "accuracy" and d.data.get("kept", True):
            print(f"accuracy: {d.subject}: {d.action}: {d.reason}")
    if args.report:
        print(format_report(report(q, batches[:4])))
    return 0

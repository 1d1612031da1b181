"""``npuc quantize MODEL --target T --calibration DATA -o OUT``: post-training quantization.

DATA is an ``.npz`` file (input name -> a batch along axis 0), a folder of ``.npy``/``.npz``
files (an ``.npy`` file is named for its input, or holds the single input; each ``.npz``
is one batch), or ``random:N`` for N random inputs, which gives poor ranges and says so.
OUT is ``.npuir`` (the quantized IR) or ``.onnx`` (QDQ ONNX for onnxruntime).
"""

from __future__ import annotations

import os
import sys


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
    p.add_argument("--sensitivity", type=int, default=0, metavar="K",
                   help="keep the K layers that lose the most accuracy in float")
    p.add_argument("--report", action="store_true",
                   help="print layer-by-layer SQNR and cosine similarity")
    from .compile import add_shape_option

    add_shape_option(p)
    return p


def _split(feeds: dict) -> list[dict]:
    import numpy as np

    n = min((np.asarray(a).shape[0] for a in feeds.values() if np.ndim(a)), default=1)
    return [{k: np.asarray(a)[i:i + 1] for k, a in feeds.items()} for i in range(n)]


def load_calibration(spec: str, graph) -> list[dict]:
    """Calibration batches from ``spec`` (see the module docstring)."""
    from npuc.compiler.executor.inputs import load_inputs, load_npy, random_count
    from npuc.ir.errors import NpucError

    names = [v.name for v in graph.inputs]
    if spec.startswith("random:"):
        from npuc.compiler.quantize.api import random_calibration

        n = random_count(spec, graph)
        print(f"npuc: warning: calibrating on {n} RANDOM inputs; the quantization ranges "
              "will be poor: give real samples with --calibration DATA.npz", file=sys.stderr)
        return random_calibration(graph, n)
    if not os.path.exists(spec):
        raise NpucError(f"--calibration {spec}: no such file or folder")

    def check(feeds, where):
        missing = [n for n in names if n not in feeds]
        if missing:
            raise NpucError(f"{where}: no array for input '{missing[0]}' (the model's inputs "
                            f"are {', '.join(names)})")
        return feeds

    if os.path.isdir(spec):
        files = sorted(f for f in os.listdir(spec) if f.endswith((".npy", ".npz")))
        if not files:
            raise NpucError(f"--calibration {spec}: the folder has no .npy or .npz files")
        batches, singles = [], {}
        for f in files:
            path = os.path.join(spec, f)
            if f.endswith(".npz"):
                batches += _split(check(load_inputs(path), path))
            else:
                stem = f[:-4]
                key = stem if stem in names else (names[0] if len(names) == 1 else None)
                if key is None:
                    raise NpucError(f"{path}: name the file for one of the inputs "
                                    f"({', '.join(names)})")
                arr = load_npy(path)
                if key == stem:
                    singles[key] = arr
                else:
                    batches += _split({key: arr if arr.ndim == len(graph.inputs[0].type.shape)
                                       else arr[None]})
        if singles:
            batches += _split(check(singles, spec))
        return batches
    if spec.endswith(".npz"):
        return _split(check(load_inputs(spec), spec))
    raise NpucError(f"--calibration {spec}: give an .npz file, a folder of .npy/.npz files, "
                    "or random:N")


def run(args) -> int:
    from npuc.compiler.frontend.load import load_model, save_model
    from npuc.compiler.quantize import export_qdq, format_report, quantize, report
    from npuc.ir.errors import NpucError

    if not args.output.endswith((".npuir", ".onnx")):
        raise NpucError(f"{args.output}: unknown output format; use .npuir or .onnx (QDQ)")
    from npuc.ir.safeio import check_output_file

    check_output_file(args.output)  # before any work
    from npuc.compiler.quantize.scheme import scheme_for
    from npuc.targets import get_target

    target = get_target(args.target)
    scheme_for(target, args.precision)  # a wrong target fails before any work
    if args.sensitivity < 0:
        raise NpucError(f"--sensitivity must be 0 or more, not {args.sensitivity}")
    graph = load_model(args.model)
    from .compile import specialise_from_args

    graph = specialise_from_args(graph, args)
    node_names = {n.name for n in graph.nodes}
    for name in args.keep_float:
        if name not in node_names:
            import difflib

            close = difflib.get_close_matches(name, sorted(node_names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise NpucError(f"--keep-float {name}: {args.model} has no node of that name{hint}")
    batches = load_calibration(args.calibration, graph)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quantize(graph, target, batches, method=args.method,
                     precision=args.precision, keep_float=args.keep_float,
                     sensitivity=args.sensitivity, progress=sys.stderr.isatty())
    if args.output.endswith(".onnx"):
        export_qdq(q, args.output)
    else:
        save_model(q, args.output)
    scheme = q.meta["quantize"]["scheme"]
    print(f"wrote {args.output} ({len(q)} nodes, {scheme.precision} for {scheme.target}, "
          f"{len(batches)} calibration samples)")
    if args.report:
        print(format_report(report(q, batches[:4])))
    return 0

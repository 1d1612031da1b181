"""``npuc verify MODEL --target T``: compile, simulate, compare with onnxruntime."""

from __future__ import annotations

from .options import add_chips, add_common, add_fanout, fanout_of


def add_parser(sub):
    p = sub.add_parser("verify", help="compile, simulate the program and check its numbers",
                       description="Compile MODEL for a target, run the program in npuc's "
                                   "command-stream simulator and compare its outputs with "
                                   "onnxruntime on the original model (npuc's float "
                                   "execution when onnxruntime is missing). Exit 0 when within "
                                   "the tolerance of the precision used, 1 when not.")
    add_common(p)
    p.add_argument("--inputs", metavar="NPZ|DIR",
                   help="inputs (default: generated, seeded): an .npz of one sample, or "
                        "many samples (a folder, an .npz with a batch axis, images, .wav, "
                        "token ids) judged together with answer agreement")
    p.add_argument("--agree", default="auto", choices=["auto", "argmax", "ctc", "none"],
                   help="the answer compared over samples: argmax along --axis (per "
                        "position for sequences), ctc (argmax, repeats merged, --blank "
                        "dropped), none; auto: ctc for an output that reads as CTC, "
                        "argmax for other outputs with a class axis")
    p.add_argument("--axis", type=int, default=-1, help="the class axis (default -1)")
    p.add_argument("--topk", type=int, default=5, metavar="K", help="top-k overlap K")
    p.add_argument("--blank", type=int, default=0, help="the CTC blank class (default 0)")
    p.add_argument("--margin", type=float, default=None, metavar="M",
                   help="an argmax flip counts where the float top-1 leads the new pick "
                        "by more than M x the output's range (default 0.1; 0: every "
                        "flip)")
    from .options import add_accuracy_options

    add_accuracy_options(p)
    from .decoder import add_decoder_options

    add_decoder_options(p, verify=True)
    p.add_argument("-o", "--output", metavar="DIR", help="also write the compiled program")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_fanout(p)
    add_chips(p)
    return p


def _verify_chips(args, inputs) -> int:
    import json

    from npuc.compiler.multichip.simulate import verify_chips

    r = verify_chips(args.model, args.target, args.chips, inputs, opt_level=args.opt_level,
                     quantize=args.quantize, calibration=args.calibration, batch=args.batch,
                     parallel=args.parallel)
    if args.json:
        print(json.dumps(r, indent=1, sort_keys=True))
        return 0 if r["passed"] else 1
    for note in r["notes"]:
        print(f"note: {note}")
    print(f"{args.chips} chips ({r['manifest']['parallelism']} parallel) simulated together; "
          f"reference: {r['reference']}; precision {r['precision']}")
    for name, m in r["outputs"].items():
        same = "bit-identical to" if m["identical_to_single_chip_ir"] else "DIFFERS from"
        print(f"  {name}: {same} the single-chip IR, SQNR {m['sqnr_db']:.2f} dB, cosine "
              f"{m['cosine']:.6f} -> {'ok' if m['passed'] else 'FAIL'}")
    print("verify: passed" if r["passed"] else "verify: FAILED")
    return 0 if r["passed"] else 1


def run(args) -> int:
    import json
    import sys

    from npuc.compiler.driver import verify
    from npuc.compiler.executor.inputs import load_inputs
    from npuc.ir.errors import InputError, NpucError

    if args.batch < 1:
        raise NpucError("--batch must be at least 1")
    from .decoder import check_decoder_args, run_verify

    check_decoder_args(args)
    if args.max_seq is not None:
        if args.inputs:
            raise NpucError("--inputs with --max-seq: the prompt is generated (seeded)")
        return run_verify(args)
    if args.inputs and args.chips <= 1 and _many_samples(args.inputs, args.batch):
        return _run_samples(args)
    inputs = load_inputs(args.inputs) if args.inputs is not None else None
    if args.chips > 1:
        return _verify_chips(args, inputs)
    try:
        r = verify(args.model, args.target, opt_level=args.opt_level, quantize=args.quantize,
                   calibration=args.calibration, inputs=inputs, schedule_in=args.schedule_in,
                   batch=args.batch, output_dir=args.output, progress=sys.stderr.isatty(),
                   shapes=args.shape, fanout=fanout_of(args))
    except InputError as e:  # the inputs the user gave do not fit the model: name the file
        if args.inputs is None or str(e).startswith((args.inputs, args.model)):
            raise
        raise InputError(f"{args.inputs}: {e}") from None
    from npuc.compiler.driver import warnings_of

    for line in warnings_of(r.compiled.graph):
        print(line, file=sys.stderr)
    if args.json:
        print(json.dumps(r.to_json(), indent=1, sort_keys=True))
        return 0 if r.passed else 1
    for note in r.notes:
        print(f"note: {note}")
    print(f"reference: {r.reference}; precision {r.precision}")
    print("criteria: " + "; ".join(r.criteria))
    for name, m in r.outputs.items():
        print(f"  {name}: {describe_row(m, r.tolerance)}")
    if r.first_difference is not None:
        print(f"  {r.first_difference.describe()}")
    failed = sorted({c for m in r.outputs.values() for c in m["failed"]})
    print("verify: passed" if r.passed else
          f"verify: FAILED ({', '.join(_WORDS[c] for c in failed)})")
    return 0 if r.passed else 1


_WORDS = {"sqnr": "SQNR below its bound", "cosine": "cosine below its bound",
          "program_vs_ir": "program differs from its IR"}


def describe_row(m: dict, tol: dict) -> str:
    """One output's measures, each beside its bound and verdict."""
    def mark(name):
        return "FAIL" if name in m["failed"] else "ok"

    ir = ("identical" if m["program_vs_ir_identical"] else
          f"differs, {m['program_vs_ir_sqnr_db']:.1f} dB")
    return (f"max error {m['max_abs_error']:.4g}, SQNR {m['sqnr_db']:.2f} dB (>= "
            f"{tol['sqnr_db_min']}: {mark('sqnr')}), cosine {m['cosine']:.6f} (>= "
            f"{tol['cosine_min']}: {mark('cosine')}), program vs IR {ir} "
            f"({mark('program_vs_ir')}) -> {'ok' if m['passed'] else 'FAIL'}")


def _many_samples(path: str, batch: int = 1) -> bool:
    """True unless ``path`` is an .npz holding one batch (the single-sample verify)."""
    import os

    import numpy as np

    if os.path.isdir(path):
        return True
    if not path.endswith(".npz") or not os.path.isfile(path):
        return os.path.exists(path)  # images, audio, token ids: the samples loader
    from npuc.compiler.executor.inputs import load_inputs

    sizes = {np.asarray(a).shape[0] for a in load_inputs(path).values() if np.ndim(a)}
    return bool(sizes) and min(sizes) > batch


def _run_samples(args) -> int:
    import json
    import sys

    from npuc.compiler.frontend.load import load_model
    from npuc.compiler.samples import group_batches, load_samples
    from npuc.compiler.verify_samples import format_samples_result, verify_samples

    graph = load_model(args.model)
    samples = group_batches(load_samples(args.inputs, graph, args.preprocess, what="--inputs"),
                            args.batch)
    r = verify_samples(args.model, args.target, samples, opt_level=args.opt_level,
                       quantize=args.quantize, calibration=args.calibration,
                       schedule_in=args.schedule_in, batch=args.batch,
                       output_dir=args.output, progress=sys.stderr.isatty(),
                       mode=args.agree, axis=args.axis, k=args.topk, blank=args.blank,
                       margin=args.margin,
                       accuracy=None if args.accuracy == "auto" else args.accuracy,
                       preprocess=args.preprocess, fanout=fanout_of(args))
    if args.json:
        print(json.dumps(r.to_json(), indent=1, sort_keys=True))
    else:
        print("\n".join(format_samples_result(r)))
    return 0 if r.passed else 1

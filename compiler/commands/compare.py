"""``npuc compare MODEL --targets A,B,...``: the chips side by side for one model."""

from __future__ import annotations

from .estimate import add_serving_options, options, write_json


def add_parser(sub):
    p = sub.add_parser("compare", help="several chips side by side for one model",
                       description="Estimate MODEL on each chip of --targets (latency, "
                                   "throughput, cards for a load, energy, work on the CPU "
                                   "and why; with --inputs, accuracy of the simulated "
                                   "program) and print them side by side; --html writes a "
                                   "report with plots.")
    p.add_argument("--targets", required=True, metavar="A,B,...",
                   help="chip names (npuc targets lists them) or chip .toml files")
    add_serving_options(p)
    p.add_argument("--inputs", metavar="NPZ",
                   help="inputs to check accuracy on: each chip's program is simulated and "
                        "compared with onnxruntime")
    p.add_argument("--html", metavar="FILE", help="write the HTML report here")
    return p


def compare(model, targets: list[str], inputs=None, **kwargs) -> dict:
    """Estimates of ``model`` on each of ``targets``; a chip that cannot run it is listed
    with the reason in ``errors``."""
    from npuc.compiler.serving.estimate import estimate
    from npuc.ir.errors import NpucError

    estimates, errors = [], {}
    for name in targets:
        try:
            e = estimate(model, name, **kwargs)
        except NpucError as err:
            errors[name] = str(err)
            continue
        if inputs is not None:
            e["accuracy"] = _accuracy(model, name, inputs, kwargs.get("quantize", "auto"))
        estimates.append(e)
    if not estimates:
        raise NpucError("no chip of --targets can run this model: " +
                        "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return {"format": "npuc-compare", "version": 1, "model": estimates[0]["model"],
            "qps": kwargs.get("qps"), "estimates": estimates, "errors": errors}


def _accuracy(model, target, inputs, quantize) -> dict:
    from npuc.compiler.driver import verify

    r = verify(model, target, quantize="auto" if quantize == "int4" else quantize,
               inputs=inputs)
    outs = r.outputs.values()
    return {"passed": r.passed, "reference": r.reference, "precision": r.precision,
            "sqnr_db_min": min(o["sqnr_db"] for o in outs),
            "cosine_min": min(o["cosine"] for o in outs)}


def run(args) -> int:
    import json

    from npuc.compiler.serving.report import render_html
    from npuc.compiler.serving.table import render
    from npuc.ir.errors import NpucError

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets:
        raise NpucError("--targets needs at least one chip")
    inputs = None
    if args.inputs:
        from npuc.compiler.executor.inputs import load_inputs

        inputs = load_inputs(args.inputs)
    result = compare(args.model, targets, inputs, **options(args))
    if args.output:
        write_json(args.output, result)
    if args.html:
        from npuc.ir.safeio import write_file

        write_file(args.html, render_html(result))
    if args.json:
        print(json.dumps(result, indent=1, sort_keys=True))
        return 0
    print(f"{result['model']}")
    print(render(result["estimates"]))
    for e in result["estimates"][:1]:
        if "accuracy" in e:
            print(f"accuracy: the simulated program against {e['accuracy']['reference']} "
                  f"on {args.inputs}")
    for name, message in result["errors"].items():
        print(f"{name}: cannot run it: {message}")
    for path in (args.output, args.html):
        if path:
            print(f"wrote {path}")
    return 0

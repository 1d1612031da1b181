"""``npuc matrix MODEL... --targets T1,T2``: compile and verify every model for every chip.

Prints a table (one row per model and chip: precision, verdict, SQNR, cosine, estimated
latency, nodes on the NPU and CPU) and, with ``--json FILE``, writes the rows as JSON.
``--workers N`` or ``--ray [ADDRESS]`` run the cells in parallel. Exit 0 when every cell
passed, 1 when one failed or could not be compiled.
"""

from __future__ import annotations

from .options import QUANTIZE, add_fanout


def add_parser(sub):
    p = sub.add_parser("matrix", help="compile and verify many models for many chips",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="an .onnx file, an .npuir file or zoo:NAME (several)")
    p.add_argument("--targets", "-t", required=True, metavar="T1,T2,...",
                   help="chip names or chip .toml files, separated by commas")
    p.add_argument("-O", dest="opt_level", type=int, default=2, choices=[0, 1, 2, 3],
                   metavar="N", help="optimization level 0-3 (default 2)")
    p.add_argument("--quantize", default="auto", choices=QUANTIZE,
                   help="precision for every chip (default: each chip's preferred)")
    p.add_argument("--calibration", metavar="PATH|random:N",
                   help="calibration inputs for every model (default: 8 random sets)")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="also write each program into DIR/MODEL/TARGET")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON to FILE")
    add_fanout(p)
    return p


def run(args) -> int:
    import json
    import os
    import sys

    from npuc.compiler.matrix import cells, json_rows, run_matrix, table
    from npuc.ir.errors import NpucError
    from npuc.targets import get_target

    from .options import fanout_of

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets:
        raise NpucError("--targets: give at least one chip name")
    for t in targets:
        get_target(t)  # an unknown chip fails before any work
    for m in args.models:
        if not m.startswith("zoo:") and not os.path.isfile(m):
            raise NpucError(f"{m}: no such file")
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            raise NpucError(f"--json {args.json}: the folder {folder} does not exist")
    work = cells(args.models, targets, args.output, opt_level=args.opt_level,
                 quantize=args.quantize, calibration=args.calibration)
    rows = run_matrix(work, fanout_of(args), progress=sys.stderr.isatty())
    for line in table(rows):
        print(line)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(json_rows(rows), f, indent=1, sort_keys=True)
            f.write("\n")
    return 0 if all(r["passed"] for r in rows) else 1

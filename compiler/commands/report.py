"""``npuc report DIR``: (re)write a compiled folder's report.html and say where it is."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("report", help="(re)write the HTML report of a compiled folder",
                       description="Write DIR/report.html from DIR/summary.json and "
                                   "DIR/decisions.json (per-layer table, roofline plot, "
                                   "decisions) and print its path.")
    p.add_argument("dir", metavar="DIR", help="a folder written by npuc compile")
    p.add_argument("--open", action="store_true", help="open it in a web browser")
    p.add_argument("--plain-svg", action="store_true",
                   help="draw the roofline as a plain SVG even when matplotlib is installed")
    return p


def run(args) -> int:
    import json
    import os

    from npuc.compiler.report import write_report
    from npuc.ir.errors import NpucError
    from npuc.ir.safeio import write_file

    try:
        with open(os.path.join(args.dir, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        with open(os.path.join(args.dir, "decisions.json"), encoding="utf-8") as f:
            decisions = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise NpucError(f"{args.dir}: not a folder written by npuc compile ({e})") from None
    if summary.get("format") != "npuc-summary":
        raise NpucError(f"{args.dir}/summary.json: not an npuc summary")
    path = os.path.join(args.dir, "report.html")
    html = write_report(summary, decisions, use_matplotlib=False if args.plain_svg else None)
    write_file(path, html)
    print(os.path.abspath(path))
    if args.open:
        import webbrowser

        webbrowser.open("file://" + os.path.abspath(path))
    return 0

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
    import os

    from npuc.compiler.readback import program_files, read_output
    from npuc.compiler.report import write_report
    from npuc.ir.errors import NpucError
    from npuc.ir.safeio import write_file

    # one program, or one per shape set (named in manifest.json)
    parts = program_files(args.dir, {"summary": "summary.json", "decisions": "decisions.json",
                                     "report": "report.html"},
                          "summary", "decisions", "report")
    for summary_name, decisions_name, report_name in parts:
        summary, decisions = read_output(args.dir, summary_name, decisions_name)
        path = os.path.join(args.dir, report_name)
        try:
            html = write_report(summary, decisions,
                                use_matplotlib=False if args.plain_svg else None)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
            raise NpucError(f"{os.path.join(args.dir, summary_name)}: values npuc cannot draw "
                            f"a report from ({type(e).__name__}: {e})") from None
        write_file(path, html)
        print(os.path.abspath(path))
    if args.open:
        import webbrowser

        webbrowser.open("file://" + os.path.abspath(path))
    return 0

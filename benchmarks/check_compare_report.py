"""Open ``npuc compare``'s HTML report in a real browser and check its plots are drawn.

    python benchmarks/check_compare_report.py                 # ResNet-50 and llama-tiny
    python benchmarks/check_compare_report.py --keep out/     # keep the pages and PNGs

Needs Chromium (Debian: ``apt-get install -y chromium``). For each model the report of
``npuc compare`` over several chips is written, loaded by headless Chromium, which
prints the DOM after the page has run (``--dump-dom``) and takes a screenshot; the check
is that the three figures are in the rendered DOM with their SVG (axes drawn) and that
the screenshot is a real picture (not one colour).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

CASES = [
    ("zoo:resnet50", ["--targets", "warboy-2pe,atom,x220-enterprise,rngd", "--quantize",
                      "int8", "--batch", "1,4", "--qps", "20000"]),
    ("zoo:decoder-tiny", ["--targets", "rngd,atom,warboy-2pe", "--workload", "in=8,out=8",
                        "--chips", "2", "--qps", "1000"]),
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run"]


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("Chromium is not installed (apt-get install -y chromium)")


def check(model: str, options: list[str], folder: str) -> list[str]:
    page = os.path.join(folder, model.split(":")[-1] + ".html")
    cmd = [sys.executable, "-m", "npuc.compiler.cli", "compare", model, *options,
           "--html", page]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    problems = []
    with tempfile.TemporaryDirectory() as profile:
        url = "file://" + os.path.abspath(page)
        dom = subprocess.run([browser(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                              url], capture_output=True, text=True, timeout=120).stdout
    with tempfile.TemporaryDirectory() as profile:
        shot = page[:-5] + ".png"
        subprocess.run([browser(), *FLAGS, f"--user-data-dir={profile}",
                        f"--screenshot={shot}", "--window-size=1400,2000", url],
                       capture_output=True, timeout=120)
    for plot in ("latency", "roofline", "cards"):
        start = dom.find(f'id="plot-{plot}"')
        if start < 0 or "<svg" not in dom[start:start + 200] or \
                "<path" not in dom[start:dom.find("</figure>", start)]:
            problems.append(f"{model}: the {plot} plot is not drawn")
    if not os.path.exists(shot) or os.path.getsize(shot) < 20000:
        problems.append(f"{model}: no screenshot, or an empty one")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", metavar="DIR", help="write the pages and screenshots here")
    args = parser.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="npuc-compare-")
    os.makedirs(folder, exist_ok=True)
    problems = []
    for model, options in CASES:
        found = check(model, options, folder)
        problems += found
        print(f"{model}: {'ok' if not found else '; '.join(found)}", flush=True)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

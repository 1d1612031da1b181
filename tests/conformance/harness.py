"""The ONNX conformance node cases, run end to end: import, execute, compare.

The onnx package carries one case per example of its operator specification (1,884 in
onnx 1.23): a model, its inputs, and the outputs of the reference implementation. Each
case is imported with ``import_onnx`` and run with ``npuc.execute``; outputs must match
with rtol 1e-3, atol 1e-4 (NaNs equal, dtypes and shapes exact)::

    python -m tests.conformance.harness            # all cases, a summary
    python -m tests.conformance.harness -v relu    # cases whose name contains "relu"

Outcomes: ``pass``; ``unsupported`` (npuc said so, in one line); ``error`` (npuc refused
the case with another one-line error); ``mismatch``; ``crash`` (an exception that is not
npuc's own error: a bug).
"""

from __future__ import annotations

import signal
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np

from tests.executor.onnx_cases import equal, value

CASE_SECONDS = 60


@dataclass
class Outcome:
    name: str
    status: str  # pass, unsupported, error, mismatch, crash
    detail: str = ""


def collect():
    import onnx.backend.test.case.node as node_cases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return node_cases.collect_testcases()


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_case(case) -> Outcome:
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.frontend.onnx_import import import_onnx
    from npuc.ir.errors import NpucError, UnsupportedError

    inputs, expected = case.data_sets[0]
    inputs, expected = [value(v) for v in inputs], [value(v) for v in expected]
    names = [vi.name for vi in case.model.graph.input
             if vi.name not in {t.name for t in case.model.graph.initializer}]
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        graph = import_onnx(case.model)
        feeds = {}
        for name, given in zip(names, inputs):
            feeds[name] = given if isinstance(given, (list, type(None))) else np.asarray(given)
        got = execute(graph, feeds)
    except UnsupportedError as e:
        return Outcome(case.name, "unsupported", str(e))
    except NpucError as e:
        return Outcome(case.name, "error", str(e))
    except _Timeout:
        return Outcome(case.name, "crash", f"took over {CASE_SECONDS} s")
    except Exception as e:  # noqa: BLE001 - a crash is what this harness looks for
        return Outcome(case.name, "crash", f"{type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    outs = list(got.values())
    if len(outs) != len(expected):
        return Outcome(case.name, "mismatch", f"{len(outs)} outputs, expected {len(expected)}")
    for i, (g, w) in enumerate(zip(outs, expected)):
        msg = equal(g, w, f"output {i}")
        if msg:
            return Outcome(case.name, "mismatch", msg)
    return Outcome(case.name, "pass")


def run_all(name_filter: str = "") -> list[Outcome]:
    return [run_case(c) for c in collect() if name_filter in c.name]


def summary(outcomes: list[Outcome]) -> str:
    counts = Counter(o.status for o in outcomes)
    parts = [f"{counts.get(k, 0)} {k}" for k in ("pass", "unsupported", "error", "mismatch",
                                                  "crash")]
    return f"ONNX conformance: {counts.get('pass', 0)} of {len(outcomes)} cases pass (" + \
        ", ".join(parts) + ")"


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    t0 = time.perf_counter()
    outcomes = run_all(args[0] if args else "")
    for o in outcomes:
        if o.status != "pass" and (verbose or o.status == "crash"):
            print(f"{o.status:11s} {o.name}: {o.detail}")
    print(summary(outcomes), f"in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

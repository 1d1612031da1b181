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

RTOL, ATOL = 1e-3, 1e-4
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


def _value(v):
    """Case data as arrays: some cases keep tensors as TensorProto (float8, int4, ...)."""
    import onnx

    from npuc.ir.onnx_types import array_from_proto

    if isinstance(v, onnx.TensorProto):
        return array_from_proto(v)
    if isinstance(v, list):
        return [_value(x) for x in v]
    return v


def _equal(got, want, where: str) -> str | None:
    if want is None or got is None:
        return None if want is None and got is None else f"{where}: optional presence differs"
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{where}: sequence length differs"
        for i, (g, w) in enumerate(zip(got, want)):
            msg = _equal(g, w, f"{where}[{i}]")
            if msg:
                return msg
        return None
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype and not (got.dtype.kind in "OU" and want.dtype.kind in "OU"):
        return f"{where}: dtype {got.dtype}, expected {want.dtype}"
    if got.shape != want.shape:
        return f"{where}: shape {list(got.shape)}, expected {list(want.shape)}"
    if want.dtype.kind in "OUS":
        return None if got.tolist() == want.tolist() else f"{where}: strings differ"
    g, w = got.astype(np.float64), want.astype(np.float64)
    if want.dtype.kind == "c":
        g, w = got.astype(np.complex128), want.astype(np.complex128)
    close = np.isclose(g, w, rtol=RTOL, atol=ATOL, equal_nan=True)
    if not close.all():
        err = np.abs(g - w)[~close]
        return f"{where}: {int((~close).sum())} of {close.size} values differ (max {err.max():.3g})"
    return None


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run_case(case) -> Outcome:
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.frontend.onnx_import import import_onnx
    from npuc.ir.errors import NpucError, UnsupportedError

    inputs, expected = case.data_sets[0]
    inputs, expected = [_value(v) for v in inputs], [_value(v) for v in expected]
    names = [vi.name for vi in case.model.graph.input
             if vi.name not in {t.name for t in case.model.graph.initializer}]
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        graph = import_onnx(case.model)
        feeds = {}
        for name, value in zip(names, inputs):
            feeds[name] = value if isinstance(value, (list, type(None))) else np.asarray(value)
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
        msg = _equal(g, w, f"output {i}")
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

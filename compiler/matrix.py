"""A model x target matrix: compile and verify every model for every chip, fanned out.

Each cell is one work item, ``(model, target)``: a worker compiles the model for the
target and verifies the program against the reference (:func:`npuc.verify`), and returns
a small row of figures, never the compiled program. A cell whose model cannot be compiled
for its target (the user's model or chip, not a crash) is a row with its error; a crash is
retried and, when it persists, fails the run (:mod:`npuc.compiler.parallel`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    """One work item: what to compile for which chip, and how."""

    model: str
    target: str
    opt_level: int = 2
    quantize: str = "auto"
    calibration: str | None = None
    output_dir: str | None = None


def run_cell(cell: Cell) -> dict:
    """Compile and verify one cell; its row (``error`` set when the input is at fault)."""
    from npuc.compiler.driver import verify
    from npuc.ir.errors import NpucError

    row = {"model": cell.model, "target": cell.target}
    t0 = time.perf_counter()
    try:
        r = verify(cell.model, cell.target, opt_level=cell.opt_level, quantize=cell.quantize,
                   calibration=cell.calibration, output_dir=cell.output_dir)
    except NpucError as e:
        row.update(passed=False, error=str(e), seconds=time.perf_counter() - t0)
        return row
    s = r.compiled.summary
    row.update(
        passed=bool(r.passed), error=None, precision=r.precision, reference=r.reference,
        sqnr_db=min(m["sqnr_db"] for m in r.outputs.values()),
        cosine=min(m["cosine"] for m in r.outputs.values()),
        estimated_latency_s=s["estimated_latency_s"], groups=s["groups"],
        nodes_on_npu=s["nodes_on_npu"], nodes_on_cpu=s["nodes_on_cpu"],
        seconds=time.perf_counter() - t0)
    return row


def cells(models: list[str], targets: list[str], output_dir: str | None = None,
          **options) -> list[Cell]:
    """Every model with every target, models outermost; with ``output_dir`` each cell's
    program goes into ``output_dir/MODEL-NAME/TARGET``."""
    out = []
    for model in models:
        for target in targets:
            folder = None
            if output_dir is not None:
                folder = os.path.join(output_dir, model_name(model), target_name(target))
            out.append(Cell(model, target, output_dir=folder, **options))
    return out


def model_name(model: str) -> str:
    """A folder name for a model: ``zoo:bert-base`` -> ``bert-base``, ``a/b.onnx`` -> ``b``."""
    if model.startswith("zoo:"):
        return model[4:]
    return os.path.splitext(os.path.basename(model))[0]


def target_name(target: str) -> str:
    """A folder name for a target: a chip name, or a chip file's stem."""
    return os.path.splitext(os.path.basename(target))[0]


def run_matrix(cells_: list[Cell], fanout=None, progress: bool = False) -> list[dict]:
    """The rows of every cell, in the order of ``cells_``."""
    if fanout is not None and fanout.parallel:
        from npuc.compiler.parallel import fan_out

        return fan_out(run_cell, cells_, fanout, desc="matrix", progress=progress)
    from tqdm.auto import tqdm

    return [run_cell(c) for c in tqdm(cells_, desc="matrix", disable=not progress,
                                      leave=False)]


def table(rows: list[dict]) -> list[str]:
    """The summary table's lines."""
    head = (f"{'model':<24} {'target':<14} {'precision':<9} {'verify':<6} {'SQNR dB':>8} "
            f"{'cosine':>9} {'latency ms':>11} {'NPU/CPU':>9} {'time s':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        start = f"{r['model'][:24]:<24} {r['target'][:14]:<14} "
        if r["error"]:
            lines.append(start + f"{'-':<9} {'error':<6} {r['error']}")
            continue
        lines.append(start + f"{r['precision']:<9} {'ok' if r['passed'] else 'FAIL':<6} "
                     f"{r['sqnr_db']:8.2f} {r['cosine']:9.6f} "
                     f"{r['estimated_latency_s'] * 1e3:11.4f} "
                     f"{r['nodes_on_npu']:>4}/{r['nodes_on_cpu']:<4} {r['seconds']:7.1f}")
    ok = sum(1 for r in rows if r["passed"])
    lines.append(f"{ok} of {len(rows)} passed")
    return lines


def json_rows(rows: list[dict]) -> list[dict]:
    """The rows without their timings: the same models and chips give the same file."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

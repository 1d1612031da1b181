"""Verification: run a compiled program in the simulator and judge it against a reference
(onnxruntime on the original model, or npuc's float execution) at its precision's
tolerance, and against the graph it was lowered from, bit for bit.

:func:`check_program` checks a program already made; :func:`judge` and :func:`compare`
are the measures. ``npuc.verify`` (:func:`npuc.compiler.driver.verify`) compiles and
checks with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npuc.compiler.pipeline import CompileResult
from npuc.ir.errors import NpucError

# Verification tolerance per precision the program computes in: (minimum SQNR in dB,
# minimum cosine similarity). See docs/compile.md for where they come from.
TOLERANCE = {"fp32": (60.0, 0.99999), "fp16": (35.0, 0.999), "bf16": (25.0, 0.995),
             "fp8": (12.0, 0.97), "int8": (12.0, 0.97), "int4": (6.0, 0.9)}


@dataclass
class VerifyResult:
    """Per-output errors of the simulated program against a reference, and against the
    IR it was lowered from."""

    passed: bool
    reference: str
    precision: str
    tolerance: dict
    outputs: dict            # name -> {max_abs_error, sqnr_db, cosine, ..., failed, passed}
    notes: list = field(default_factory=list)
    compiled: CompileResult | None = None
    first_difference: object = None  # executor.diagnose.Difference when program != IR

    @property
    def criteria(self) -> list[str]:
        """Every criterion applied, in words, with its bound."""
        tol = self.tolerance
        return [f"SQNR against {self.reference} >= {tol['sqnr_db_min']} dB ({self.precision})",
                f"cosine against {self.reference} >= {tol['cosine_min']} ({self.precision})",
                "program identical to the IR it was lowered from (bit for bit)"]

    def to_json(self) -> dict:
        return {"passed": self.passed, "reference": self.reference, "precision": self.precision,
                "tolerance": self.tolerance, "criteria": self.criteria,
                "outputs": self.outputs, "notes": self.notes,
                "first_difference": (self.first_difference.to_json()
                                     if self.first_difference is not None else None)}


def judge(precision: str, expected: dict, lowered: dict, got: dict) -> tuple[dict, bool]:
    """Per-output measures and verdicts of the program's outputs ``got``: against the
    reference's ``expected`` at the precision's tolerance, and against the IR's
    ``lowered`` bit for bit. Each row lists the criteria it failed."""
    from npuc.compiler.executor.diagnose import same_bits

    sqnr_min, cos_min = TOLERANCE[precision]
    rows, passed = {}, True
    for name, want in expected.items():
        program = np.asarray(got[name])
        m = compare(program, np.asarray(want))
        ir = np.asarray(lowered[name])
        m["program_vs_ir_sqnr_db"] = compare(program, ir)["sqnr_db"]
        m["program_vs_ir_identical"] = bool(program.shape == ir.shape and
                                            same_bits(program, ir).all())
        failed = []
        if not m["sqnr_db"] >= sqnr_min:
            failed.append("sqnr")
        if not m["cosine"] >= cos_min:
            failed.append("cosine")
        if not m["program_vs_ir_identical"]:
            failed.append("program_vs_ir")
        m["failed"] = failed
        m["passed"] = not failed
        passed &= m["passed"]
        rows[name] = m
    return rows, passed


def check_program(model, compiled, program, weights, feeds, notes=()) -> VerifyResult:
    """Simulate ``program`` (compiled as ``compiled``) on ``feeds`` and compare it with the
    reference and with the graph it was lowered from, bit for bit."""
    from npuc.compiler.executor.diagnose import first_difference
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.executor.simulator import simulate

    # the program must compute what the graph it was lowered from computes, tile by tile
    # (run first: it checks the inputs' names, dtypes and shapes against the model)
    lowered = execute(compiled.graph, feeds)
    got = simulate(program, weights, feeds, target=compiled.target)
    expected, reference, more = reference_outputs(model, compiled, feeds)
    notes = list(notes) + more
    judged = _judged_precision(compiled)
    rows, passed = judge(judged, expected, lowered, got)
    diff = None
    if not all(m["program_vs_ir_identical"] for m in rows.values()):
        diff = first_difference(compiled.graph, program, weights, feeds)
    sqnr_min, cos_min = TOLERANCE[judged]
    return VerifyResult(passed, reference, compiled.precision,
                        {"sqnr_db_min": sqnr_min, "cosine_min": cos_min,
                         "program_vs_ir": "identical"}, rows, notes, compiled, diff)


def _judged_precision(compiled) -> str:
    """The precision whose tolerance applies: a pre-quantized model's reference computes
    in int8 itself, so its program is judged at least as loosely as int8."""
    p = compiled.precision
    if compiled.graph.meta.get("prequantized") and TOLERANCE[p][0] > TOLERANCE["int8"][0]:
        return "int8"
    return p


def compare(got: np.ndarray, want: np.ndarray) -> dict:
    """Max absolute error, SQNR (dB) and cosine similarity of ``got`` against ``want``."""
    if got.shape != want.shape:
        raise NpucError(f"output shape {list(got.shape)} differs from the reference "
                        f"{list(want.shape)}")
    g, w = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    noise = float(np.sum((g - w) ** 2))
    signal = float(np.sum(w ** 2))
    sqnr = 200.0 if noise == 0 else (10 * np.log10(signal / noise) if signal > 0 else -200.0)
    denom = float(np.linalg.norm(g) * np.linalg.norm(w))
    cosine = 1.0 if denom == 0 and noise == 0 else (float(g @ w) / denom if denom else 0.0)
    return {"max_abs_error": float(np.max(np.abs(g - w))) if g.size else 0.0,
            "sqnr_db": float(min(sqnr, 200.0)), "cosine": cosine}


def sample_inputs(model, compiled) -> dict:
    """Inputs to verify ``compiled`` on when the user gave none: a zoo model's own sample
    inputs, else random ones."""
    from npuc.compiler.executor.inputs import random_inputs

    if isinstance(model, str) and model.startswith("zoo:") and compiled.proto is not None:
        from npuc.compiler import zoo

        return zoo.sample_inputs(compiled.proto, batch=1, seed=0)
    return random_inputs(compiled.graph, seed=0)


def reference_outputs(model, compiled, feeds) -> tuple[dict, str, list]:
    notes = []
    if compiled.proto is not None:
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
            notes.append("onnxruntime is not installed: compared with npuc's float execution "
                         "instead")
        if ort is not None:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 2
            opts.log_severity_level = 3
            try:
                session = ort.InferenceSession(
                    (compiled.source_proto or compiled.proto).SerializeToString(), opts,
                    providers=["CPUExecutionProvider"])
            except Exception as e:  # an operator onnxruntime has only for GPUs, say
                session = None
                notes.append("onnxruntime cannot run this model on the CPU "
                             f"({str(e).splitlines()[0][:160]}): compared with npuc's float "
                             "execution instead")
            if session is not None:
                names = [o.name for o in session.get_outputs()]
                outs = session.run(names, feeds)
                return dict(zip(names, outs)), "onnxruntime", notes
    else:
        notes.append("the model is not ONNX: compared with npuc's float execution")
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.schedule.prepare import load_static

    graph, _ = load_static(model, 1, given={k: np.shape(v) for k, v in feeds.items()})
    return execute(graph, feeds), "npuc float execution", notes

"""Compiling and verifying a model for several shape sets (buckets) at once.

``npuc compile model.onnx --shape seq=128,512,2048`` compiles one program per shape set
(:func:`npuc.compiler.pipeline.compile_one` for each), then lays their weights out in one shared blob and
writes one folder with a manifest that names each program's shapes
(:mod:`npuc.compiler.lower.buckets` describes the layout). ``npuc verify`` with several
shape sets runs the given inputs on the program compiled for their shapes, or, without
inputs, each program on inputs of its own shapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from npuc.compiler.pipeline import compile_one, json_text
from npuc.compiler.verification import VerifyResult, check_program, sample_inputs
from npuc.ir.errors import NpucError


@dataclass
class BucketsResult:
    """The programs of a bucketed compile: per shape set a CompileResult, the programs
    rewritten to read the one shared weight blob, and the manifest."""

    labels: list
    results: list
    programs: list
    weights: bytes
    manifest: dict
    output_dir: str | None = None
    files: dict = field(default_factory=dict)

    @property
    def summary(self) -> dict:
        """The first program's summary (for messages); each is in ``results``."""
        return self.results[0].summary


def compile_buckets(model, target, sets, output_dir=None, **options) -> BucketsResult:
    """One program per shape set of ``sets``, written into ``output_dir`` when given."""
    from npuc.compiler.lower.buckets import manifest, merge_weights
    from npuc.ir.safeio import write_dir

    labels = [s.label() for s in sets]
    results = [compile_one(model, target, shapes=s, **options) for s in sets]
    seen = {}
    for label, r in zip(labels, results):
        key = json.dumps(r.program["inputs"], sort_keys=True)
        if key in seen:
            raise NpucError(f"--shape sets {seen[key]} and {label} give the same input "
                            "shapes; each program needs its own")
        seen[key] = label
    programs, blob = merge_weights([r.program for r in results],
                                   [r.weights for r in results])
    info = manifest(results[0].target.name, labels, programs, blob)
    files = {"manifest.json": json_text(info), "weights.bin": blob}
    for i, (r, p) in enumerate(zip(results, programs)):
        files[f"program-{i}.json"] = json_text(p)
        files[f"schedule-{i}.json"] = r.files["schedule.json"]
        files[f"summary-{i}.json"] = r.files["summary.json"]
        files[f"decisions-{i}.json"] = r.files["decisions.json"]
        files[f"report-{i}.html"] = r.files["report.html"]
    out = BucketsResult(labels, results, programs, blob, info, files=files)
    if output_dir is not None:
        write_dir(output_dir, files)
        out.output_dir = output_dir
    return out


def verify_buckets(model, target, sets, inputs=None, calibration=None, output_dir=None,
                   **options):
    """Verify a bucketed compile: the inputs on the program for their shapes, or every
    program on inputs of its shapes; one VerifyResult (rows named by shape set when
    several programs ran)."""
    import numpy as np

    from npuc.compiler.lower.buckets import pick

    notes = []
    built = compile_buckets(model, target, sets, output_dir=output_dir,
                            calibration=calibration, **options)
    if inputs is not None:
        chosen = [(pick(built.programs, inputs), inputs)]
        notes.append(f"the inputs ran on program {chosen[0][0]} "
                     f"({built.labels[chosen[0][0]]})")
    else:
        chosen = [(i, sample_inputs(model, r)) for i, r in enumerate(built.results)]
    rows, passed, first = {}, True, None
    for i, feeds in chosen:
        feeds = {k: np.asarray(v) for k, v in feeds.items()}
        r = check_program(model, built.results[i], built.programs[i], built.weights, feeds)
        first = first or r
        passed &= r.passed
        for name, m in r.outputs.items():
            rows[name if len(chosen) == 1 else f"{name} [{built.labels[i]}]"] = m
        notes += [n for n in r.notes if n not in notes]
    return VerifyResult(passed, first.reference, first.precision, first.tolerance, rows,
                        notes, built.results[chosen[0][0]])

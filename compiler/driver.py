"""The compiler driver: ``npuc.compile`` and ``npuc.verify``.

One shape set gives one program (the pipeline, :mod:`.pipeline`); several give one
program each, sharing one weight blob (:mod:`.bucketed`). Verification's measures are
:mod:`.verification`; this module re-exports what callers import from here.
"""

from __future__ import annotations

import numpy as np

from npuc.compiler.bucketed import compile_buckets, verify_buckets
from npuc.compiler.pipeline import (  # noqa: F401  (re-exported)
    QUANTIZE_CHOICES,
    CompileResult,
    compile_one,
    warnings_of,
)
from npuc.compiler.quantize_step import InputsAsCalibration
from npuc.compiler.schedule.shapes import parse_shapes
from npuc.compiler.verification import (  # noqa: F401  (re-exported)
    TOLERANCE,
    VerifyResult,
    check_program,
    compare,
    judge,
    sample_inputs,
)
from npuc.ir.decisions import log_of
from npuc.ir.errors import NpucError


def compile(model, target, opt_level: int = 2, quantize: str = "auto", calibration=None,
            output_dir: str | None = None, schedule_in: str | None = None,
            schedule_out: str | None = None, batch: int = 1, progress: bool = False,
            shapes=None, input_shapes: dict | None = None, keep_reference: bool = True,
            fanout=None, accuracy: str | None = "auto", preprocess: str | None = None,
            layers: dict | None = None, max_seq: int | None = None,
            last_logits: bool = False, cache_rows: int | None = None,
            cache_scales: dict | None = None):
    """Compile ``model`` (a path, ``zoo:NAME`` or ModelProto) for ``target``: a
    :class:`CompileResult` (a :class:`~npuc.compiler.bucketed.BucketsResult` when
    ``shapes`` asks for several shape sets).

    ``shapes`` (``--shape`` specs or a :class:`ShapeSet`) and ``input_shapes`` (the shapes
    of inputs the user has) give the symbolic dimensions their values; see
    :mod:`npuc.compiler.schedule.shapes`. ``keep_reference=False`` lets the ONNX model go
    once it is imported (``proto`` is then None): verification needs it, a compile alone
    does not, and for a large model it is as large as all its float32 weights. ``fanout``
    (a :class:`npuc.compiler.parallel.Fanout`) spreads calibration over worker processes or
    Ray; the result is the same. ``accuracy``: the requirement the quantization recovery
    meets on the calibration samples (``"argmax<=1%"``, ``"sqnr>=30"``, ``"off"``;
    ``"auto"``: the default requirement when real calibration data is given).
    ``preprocess``: how calibration images become inputs (see :mod:`npuc.compiler.samples`).
    ``layers``: node name -> scheme, for mixed precision (see
    :mod:`npuc.compiler.quantize.plan`). ``max_seq``: a decoder's KV cache becomes device
    state of that many positions, written in place (see
    :mod:`npuc.compiler.schedule.kvcache`), of ``cache_rows`` batch rows (the batch when
    None; a decode program at a smaller batch uses the leading rows, a prefill writes from
    its ``cache_row`` input on); ``cache_scales``: an fp8 program's scale for each cache
    (by name), stored as fp8 with it (the artifact's programs share it); ``last_logits``:
    the logits of the last token only (a prefill's)."""
    if len(parse_shapes(shapes)) > 1:
        if schedule_in is not None or schedule_out is not None:
            raise NpucError("a schedule file pins one program; give --schedule-in or "
                            "--schedule-out with one shape set, not several")
        return compile_buckets(model, target, parse_shapes(shapes), opt_level=opt_level,
                               quantize=quantize, calibration=calibration,
                               output_dir=output_dir, batch=batch, progress=progress,
                               keep_reference=keep_reference, fanout=fanout,
                               max_seq=max_seq, last_logits=last_logits)
    return compile_one(model, target, opt_level, quantize, calibration, output_dir,
                       schedule_in, schedule_out, batch, progress, shapes, input_shapes,
                       keep_reference, fanout, accuracy, preprocess, layers, max_seq,
                       last_logits, cache_rows, cache_scales)


def verify(model, target, opt_level: int = 2, quantize: str = "auto", calibration=None,
           inputs: dict | None = None, schedule_in: str | None = None, batch: int = 1,
           output_dir: str | None = None, progress: bool = False, shapes=None,
           fanout=None) -> VerifyResult:
    """Compile, simulate the program, and compare with onnxruntime on the original model
    (npuc's own float execution when onnxruntime is not installed, and said so).

    Several shape sets compile one program each (see :mod:`npuc.compiler.bucketed`); the
    inputs are run by the program compiled for their shapes."""
    if len(parse_shapes(shapes)) > 1:
        return verify_buckets(model, target, parse_shapes(shapes), opt_level=opt_level,
                              quantize=quantize, calibration=calibration, inputs=inputs,
                              batch=batch, output_dir=output_dir, progress=progress,
                              fanout=fanout)
    given = None if inputs is None else {k: np.shape(v) for k, v in inputs.items()}
    early = []
    if calibration is None and inputs is not None:
        # random calibration knows nothing of a sample rate or a token id; the inputs do
        # (a pre-quantized model keeps its own scales: they are not the user's samples)
        calibration = InputsAsCalibration([inputs])
    compiled = compile_one(model, target, opt_level, quantize, calibration, output_dir,
                           schedule_in, batch=batch, progress=progress, shapes=shapes,
                           input_shapes=given, fanout=fanout)
    if isinstance(calibration, InputsAsCalibration) and not any(
            d.stage == "prequantized" and d.action == "model parameters"
            for d in log_of(compiled.graph)):
        early.append("no --calibration given: the quantizer was calibrated on the inputs "
                     "verified")
    feeds = inputs if inputs is not None else sample_inputs(model, compiled)
    return check_program(model, compiled, compiled.program, compiled.weights, feeds, early)

"""Post-training quantization for the chips' integer and narrow float formats.

- :func:`quantize`: a quantized copy of a graph for a target (int8 with the chip's
  integer arithmetic, or fp8/bf16/fp16 rounding), from calibration data.
- :func:`report`: layer-by-layer SQNR and cosine similarity against the float graph.
- :func:`export_qdq`: the quantized graph as QDQ ONNX for onnxruntime.
- Observers (``MinMaxObserver``, ``PercentileObserver``, ``EntropyObserver``,
  ``MSEObserver``) and the fixed-point helpers in :mod:`.fixedpoint`.

See docs/quantization.md.
"""

from __future__ import annotations

from npuc.ir.lazy import lazy_exports

_EXPORTS = {
    "quantize": "api", "random_calibration": "api", "params_of": "api",
    "report": "compare", "layer_report": "compare", "format_report": "compare",
    "sqnr": "compare", "cosine": "compare",
    "export_qdq": "qdq", "to_qdq": "qdq",
    "Scheme": "scheme", "scheme_for": "scheme",
    "MinMaxObserver": "observers", "PercentileObserver": "observers",
    "EntropyObserver": "observers", "MSEObserver": "observers", "make_observer": "observers",
    "calibrate": "calibrate",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

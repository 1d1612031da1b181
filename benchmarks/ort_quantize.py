"""onnxruntime's ``quantize_static``, the baseline the quantization benchmarks compare with."""

from __future__ import annotations


def ort_quantize_static(src: str, dst: str, calibration, fmt: str = "qdq",
                        per_channel: bool = True, method: str = "MinMax",
                        int8: bool = True) -> str:
    """Quantize the model file ``src`` into ``dst`` with onnxruntime, calibrated on the
    input dicts ``calibration`` by ``method`` (MinMax, Entropy, Percentile, Distribution).
    ``fmt``: ``qdq`` or ``qoperator``; ``int8``: signed int8 activations and weights (False:
    onnxruntime's defaults, uint8 activations)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calibration)

        def get_next(self):
            return next(self.it, None)

    types = {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8} if int8 \
        else {}
    quantize_static(src, dst, Reader(),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    per_channel=per_channel, calibrate_method=getattr(CalibrationMethod, method),
                    **types)
    return dst

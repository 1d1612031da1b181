"""A decoder's ONNX models as onnxruntime runs them, for its reference outputs and its
calibration samples: the session and HuggingFace's names of the KV cache.
"""

from __future__ import annotations

from npuc.ir.errors import NpucError


def present_name(past: str) -> str:
    """``past_key_values.0.key`` -> ``present.0.key`` (HuggingFace's names)."""
    rest = past.split(".", 1)[1] if "." in past else past
    return f"present.{rest}"


def reference_session(proto):
    """An onnxruntime session on a ModelProto or an ONNX file (its external data beside
    it)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise NpucError("verifying a decoder needs onnxruntime (pip install onnxruntime)") \
            from None
    if proto is None:
        raise NpucError("the decoder's ONNX model was not kept for the reference")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3
    model = proto.SerializeToString() if hasattr(proto, "SerializeToString") else str(proto)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

"""JSON spellings of what a program carries: attributes, tensor types, quantization.

Arrays become ``{"array": [...], "dtype": "float32", "shape": [...]}`` so that a program
file is plain JSON and reads back to the same values. Floats are written by Python's
``repr`` (shortest round-trip form), so the same program always gives the same bytes.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.errors import UnsupportedError
from npuc.ir.types import QuantParams, TensorType


def encode_value(value, where: str = "attribute"):
    """A JSON-ready form of an attribute value (lists, scalars, strings, arrays)."""
    if isinstance(value, np.ndarray):
        return {"array": value.ravel().tolist(), "dtype": str(value.dtype),
                "shape": list(value.shape)}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [encode_value(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise UnsupportedError(f"{where}: a {type(value).__name__} attribute cannot be lowered "
                           "into a program")


def decode_value(value):
    """The inverse of :func:`encode_value`."""
    if isinstance(value, dict) and "array" in value:
        return np.asarray(value["array"], dtype=value["dtype"]).reshape(value["shape"])
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def encode_type(t: TensorType) -> dict:
    out = {"dtype": t.dtype.name, "shape": list(t.shape)}
    if t.quant is not None:
        q = t.quant
        out["quant"] = {"scale": encode_value(q.scale), "zero_point": encode_value(q.zero_point),
                        "axis": q.axis}
    return out


def decode_type(d: dict) -> TensorType:
    quant = None
    if d.get("quant"):
        q = d["quant"]
        quant = QuantParams(decode_value(q["scale"]), decode_value(q["zero_point"]), q["axis"])
    return TensorType(d["dtype"], tuple(d["shape"]), quant)

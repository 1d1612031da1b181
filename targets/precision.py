"""Precisions: the names a datasheet and a chip file give what a chip computes in.

``int4``, ``int8``, ``fp8``, ``fp16``, ``bf16``, ``fp32``. Each is stored as one IR element
type (``fp8`` as ``f8e4m3``), which gives its numpy dtype and its bytes per element (int4
packs two elements in a byte). Everything that turns a precision name into a type or a
size reads it here.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.dtypes import DType, dtype

PRECISIONS = ("int4", "int8", "fp8", "fp16", "bf16", "fp32")

FLOAT_PRECISIONS = ("fp32", "bf16", "fp16", "fp8")
"""The precisions that are floating-point formats (no calibration needed but for fp8)."""

IR_DTYPE = {"int4": "i4", "int8": "i8", "fp8": "f8e4m3", "fp16": "f16", "bf16": "bf16",
            "fp32": "f32"}
"""The IR element type a tensor at each precision is stored as."""

_IR_TO_PRECISION = {
    "i4": "int4", "u4": "int4", "i8": "int8", "u8": "int8",
    "f8e4m3": "fp8", "f8e4m3fnuz": "fp8", "f8e5m2": "fp8", "f8e5m2fnuz": "fp8",
    "f16": "fp16", "bf16": "bf16", "f32": "fp32",
}


def precision_of(ir_dtype_name: str) -> str | None:
    """The chip precision an IR element type computes in (``"i8"`` -> ``"int8"``), or None."""
    return _IR_TO_PRECISION.get(ir_dtype_name)


def ir_dtype(precision: str) -> DType:
    """The IR element type a precision is stored as (``"bf16"`` -> ``bf16``)."""
    return dtype(IR_DTYPE[precision])


def numpy_dtype(precision: str) -> np.dtype:
    """The numpy dtype of arrays at a precision (ml_dtypes for bf16, fp8 and int4)."""
    return ir_dtype(precision).numpy


def bytes_per_element(precision: str) -> float:
    """Bytes one element takes in the chip's memory: 0.5 for int4, 1 for int8 and fp8, 2 for
    fp16 and bf16, 4 for fp32."""
    return ir_dtype(precision).bits / 8

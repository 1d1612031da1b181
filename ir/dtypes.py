"""Element types of tensors.

Each :class:`DType` knows its short text name (used by the text format), its numpy dtype
(from ml_dtypes where numpy has none: bf16, the fp8 family, int4) and its ONNX
``TensorProto`` enum.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
from onnx import TensorProto


@dataclass(frozen=True)
class DType:
    """An element type: ``name`` is the text-format spelling, e.g. ``f32`` or ``i8``."""

    name: str
    onnx: int
    np_dtype: np.dtype | None  # None for strings (object arrays)
    bits: int
    kind: str  # "float", "int", "uint", "bool", "string", "complex"

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def is_integer(self) -> bool:
        return self.kind in ("int", "uint")

    @property
    def is_signed(self) -> bool:
        return self.kind in ("int", "float", "complex")

    @property
    def numpy(self) -> np.dtype:
        """The numpy dtype for arrays of this type (object for strings)."""
        return np.dtype(object) if self.np_dtype is None else self.np_dtype

    @property
    def itemsize(self) -> int:
        """Bytes per element in memory (int4 occupies a byte in numpy arrays)."""
        return self.numpy.itemsize

    def __repr__(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name


def _d(name, onnx_enum, np_dtype, bits, kind):
    return DType(name, onnx_enum, None if np_dtype is None else np.dtype(np_dtype), bits, kind)


_ALL = [
    _d("f32", TensorProto.FLOAT, np.float32, 32, "float"),
    _d("f64", TensorProto.DOUBLE, np.float64, 64, "float"),
    _d("f16", TensorProto.FLOAT16, np.float16, 16, "float"),
    _d("bf16", TensorProto.BFLOAT16, ml_dtypes.bfloat16, 16, "float"),
    _d("f8e4m3", TensorProto.FLOAT8E4M3FN, ml_dtypes.float8_e4m3fn, 8, "float"),
    _d("f8e4m3fnuz", TensorProto.FLOAT8E4M3FNUZ, ml_dtypes.float8_e4m3fnuz, 8, "float"),
    _d("f8e5m2", TensorProto.FLOAT8E5M2, ml_dtypes.float8_e5m2, 8, "float"),
    _d("f8e5m2fnuz", TensorProto.FLOAT8E5M2FNUZ, ml_dtypes.float8_e5m2fnuz, 8, "float"),
    _d("i64", TensorProto.INT64, np.int64, 64, "int"),
    _d("i32", TensorProto.INT32, np.int32, 32, "int"),
    _d("i16", TensorProto.INT16, np.int16, 16, "int"),
    _d("i8", TensorProto.INT8, np.int8, 8, "int"),
    _d("i4", TensorProto.INT4, ml_dtypes.int4, 4, "int"),
    _d("u64", TensorProto.UINT64, np.uint64, 64, "uint"),
    _d("u32", TensorProto.UINT32, np.uint32, 32, "uint"),
    _d("u16", TensorProto.UINT16, np.uint16, 16, "uint"),
    _d("u8", TensorProto.UINT8, np.uint8, 8, "uint"),
    _d("u4", TensorProto.UINT4, ml_dtypes.uint4, 4, "uint"),
    _d("bool", TensorProto.BOOL, np.bool_, 8, "bool"),
    _d("str", TensorProto.STRING, None, 0, "string"),
    _d("c64", TensorProto.COMPLEX64, np.complex64, 64, "complex"),
    _d("c128", TensorProto.COMPLEX128, np.complex128, 128, "complex"),
]
# Newer types, present when the installed onnx and ml_dtypes both know them.
for _name, _proto, _np, _bits, _kind in [("f4e2m1", "FLOAT4E2M1", "float4_e2m1fn", 4, "float"),
                                         ("f8e8m0", "FLOAT8E8M0", "float8_e8m0fnu", 8, "float"),
                                         ("i2", "INT2", "int2", 2, "int"),
                                         ("u2", "UINT2", "uint2", 2, "uint")]:
    if hasattr(TensorProto, _proto) and hasattr(ml_dtypes, _np):
        _ALL.append(_d(_name, getattr(TensorProto, _proto), getattr(ml_dtypes, _np), _bits, _kind))

BY_NAME: dict[str, DType] = {d.name: d for d in _ALL}
BY_ONNX: dict[int, DType] = {d.onnx: d for d in _ALL}
_BY_NUMPY: dict[np.dtype, DType] = {d.np_dtype: d for d in _ALL if d.np_dtype is not None}

f32, f64, f16, bf16 = BY_NAME["f32"], BY_NAME["f64"], BY_NAME["f16"], BY_NAME["bf16"]
f8e4m3, f8e5m2 = BY_NAME["f8e4m3"], BY_NAME["f8e5m2"]
i64, i32, i16, i8, i4 = (BY_NAME[n] for n in ("i64", "i32", "i16", "i8", "i4"))
u8, boolean, string = BY_NAME["u8"], BY_NAME["bool"], BY_NAME["str"]


def dtype(spec) -> DType:
    """The DType for a text name, an ONNX enum, a numpy dtype or a DType."""
    if isinstance(spec, DType):
        return spec
    if isinstance(spec, str) and spec in BY_NAME:
        return BY_NAME[spec]
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if int(spec) in BY_ONNX:
            return BY_ONNX[int(spec)]
        raise KeyError(f"ONNX element type {int(spec)} is not supported")
    np_dt = np.dtype(spec)
    if np_dt.kind in ("U", "S", "O"):
        return string
    if np_dt in _BY_NUMPY:
        return _BY_NUMPY[np_dt]
    raise KeyError(f"no npuc element type for {spec!r}")


def of_array(array: np.ndarray) -> DType:
    """The DType of a numpy array."""
    return dtype(array.dtype)

"""Conversions between ONNX type and tensor protos and npuc types and arrays."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TypeProto, numpy_helper

from .dtypes import BY_ONNX, DType
from .dtypes import dtype as to_dtype
from .errors import NpucError, UnsupportedError
from .types import OptionalType, SequenceType, TensorType, Type


def type_from_proto(tp: TypeProto, where: str = "") -> Type | None:
    """The npuc type of an ONNX TypeProto (None when the proto says nothing)."""
    which = tp.WhichOneof("value")
    if which is None:
        return None
    if which == "tensor_type":
        tt = tp.tensor_type
        if tt.elem_type == 0:
            return None
        if tt.elem_type not in BY_ONNX:
            raise UnsupportedError(
                f"{where}element type {onnx.TensorProto.DataType.Name(tt.elem_type)} "
                "is not supported")
        shape = None
        if tt.HasField("shape"):
            dims = []
            for d in tt.shape.dim:
                # -1 and "?" are how exporters write "any size" (not one shared symbol)
                if d.HasField("dim_value") and d.dim_value < -1:
                    raise NpucError(f"{where}negative dimension {d.dim_value} in its shape")
                dims.append(dim_from_proto(d))
            shape = tuple(dims)
            if all(isinstance(d, int) for d in dims):
                from .limits import check_shape

                check_shape(dims, max(BY_ONNX[tt.elem_type].bits // 8, 1),
                            where.rstrip(": ") or "a tensor")
        return TensorType(BY_ONNX[tt.elem_type], shape)
    if which == "sequence_type":
        return SequenceType(type_from_proto(tp.sequence_type.elem_type, where))
    if which == "optional_type":
        return OptionalType(type_from_proto(tp.optional_type.elem_type, where))
    raise UnsupportedError(f"{where}values of ONNX type '{which}' are not supported")


def dim_from_proto(d) -> int | str | None:
    """An ONNX dimension as npuc writes it: its size, its symbol, or None for one of any
    size (no value, ``-1`` or ``"?"``, how exporters write "any size")."""
    if d.HasField("dim_value") and d.dim_value >= 0:
        return int(d.dim_value)
    if d.HasField("dim_param") and d.dim_param and d.dim_param != "?":
        return d.dim_param
    return None


def type_to_proto(t: Type | None) -> TypeProto:
    """The ONNX TypeProto of an npuc type (an empty proto for None)."""
    tp = TypeProto()
    if t is None:
        return tp
    if isinstance(t, TensorType):
        tp.tensor_type.elem_type = t.dtype.onnx
        if t.shape is not None:
            shape = tp.tensor_type.shape
            shape.SetInParent()
            for d in t.shape:
                dim = shape.dim.add()
                if isinstance(d, int):
                    dim.dim_value = d
                elif isinstance(d, str):
                    dim.dim_param = d
        return tp
    if isinstance(t, SequenceType):
        tp.sequence_type.elem_type.CopyFrom(type_to_proto(t.elem))
        return tp
    if isinstance(t, OptionalType):
        tp.optional_type.elem_type.CopyFrom(type_to_proto(t.elem))
        return tp
    raise TypeError(t)


def array_from_proto(tensor: onnx.TensorProto, base_dir: str | None = None) -> np.ndarray:
    """The numpy array of a TensorProto (external data read from ``base_dir``); its
    declared shape is checked against the size guard first."""
    from .limits import check_shape

    dt = BY_ONNX.get(tensor.data_type)
    check_shape(tensor.dims, max(dt.bits // 8, 1) if dt is not None else 1,
                f"tensor '{tensor.name}'")
    try:
        arr = numpy_helper.to_array(tensor, base_dir or "")
    except (ValueError, TypeError, OverflowError) as e:  # data that does not fit its shape
        raise NpucError(f"tensor '{tensor.name}': its data does not match its shape "
                        f"{list(tensor.dims)} ({str(e).strip()[:100]})") from None
    if tensor.data_type == onnx.TensorProto.STRING:
        arr = np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b,
                           otypes=[object])(arr) if arr.size else arr.astype(object)
    return arr


def array_to_proto(array: np.ndarray, name: str = "", dt: DType | None = None) -> onnx.TensorProto:
    """A TensorProto holding ``array`` (element type ``dt`` or the array's own)."""
    dt = dt or to_dtype(array.dtype)
    if dt.kind == "string":
        return onnx.helper.make_tensor(name, onnx.TensorProto.STRING, array.shape,
                                       [s.encode() if isinstance(s, str) else s
                                        for s in array.reshape(-1)])
    arr = np.asarray(array, dtype=dt.numpy)  # not ascontiguousarray: it makes 0-d arrays 1-d
    if not arr.flags.c_contiguous:
        arr = arr.copy()
    return numpy_helper.from_array(arr, name)

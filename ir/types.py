"""Tensor types: element type, shape with symbolic dimensions, quantization parameters.

A dimension is an ``int`` (known), a ``str`` (a symbol such as ``"batch"``; equal symbols
are equal sizes) or ``None`` (unknown). A shape of ``None`` means the rank is unknown.
Sequences and optionals, which a few ONNX operators use, have their own small types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from .dtypes import DType
from .dtypes import dtype as to_dtype
from .spelling import format_dim, format_values

Dim = Union[int, str, None]


@dataclass(frozen=True, eq=False)
class QuantParams:
    """Affine quantization: ``real = scale * (q - zero_point)``.

    ``scale`` and ``zero_point`` are scalars (per-tensor) or 1-D arrays along ``axis``
    (per-channel). ``zero_point`` has the storage type of the quantized tensor.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32))
        object.__setattr__(self, "zero_point", np.asarray(self.zero_point))

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, QuantParams)
            and self.axis == other.axis
            and self.scale.shape == other.scale.shape
            and np.array_equal(self.scale, other.scale)
            and self.zero_point.dtype == other.zero_point.dtype
            and np.array_equal(self.zero_point, other.zero_point)
        )

    def __hash__(self) -> int:
        return hash((self.axis, self.scale.tobytes(), self.zero_point.tobytes()))

    def __str__(self) -> str:
        """The text spelling: ``{axis=0, scale=[0.5, 0.25], zero_point=i8:[0, 0]}``."""
        parts = [] if self.axis is None else [f"axis={self.axis}"]
        parts.append("scale=" + format_values(self.scale, "f32"))
        zp_dt = to_dtype(self.zero_point.dtype).name
        parts.append(f"zero_point={zp_dt}:" + format_values(self.zero_point, zp_dt))
        return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True)
class TensorType:
    """The type of a tensor value."""

    dtype: DType
    shape: tuple[Dim, ...] | None = None
    quant: QuantParams | None = field(default=None, compare=True)

    def __post_init__(self):
        object.__setattr__(self, "dtype", to_dtype(self.dtype))
        if self.shape is not None:
            dims = []
            for d in self.shape:
                if isinstance(d, (int, np.integer)) and not isinstance(d, bool):
                    dims.append(int(d))
                elif d is None or isinstance(d, str):
                    dims.append(d)
                else:
                    raise TypeError(f"bad dimension {d!r}")
            object.__setattr__(self, "shape", tuple(dims))

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        """True when every dimension is a known integer."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    @property
    def numel(self) -> int | None:
        """Number of elements, or None when the shape is not fully known."""
        if not self.is_static:
            return None
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int | None:
        n = self.numel
        return None if n is None else (n * self.dtype.bits + 7) // 8

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, None if shape is None else tuple(shape), self.quant)

    def with_dtype(self, dt) -> "TensorType":
        return TensorType(to_dtype(dt), self.shape, None)

    def with_quant(self, quant: QuantParams | None) -> "TensorType":
        return TensorType(self.dtype, self.shape, quant)

    def __str__(self) -> str:
        """The text spelling: ``f32[1,3,N,?]``, ``i8[*]``, with its quantization after."""
        shape = "[*]" if self.shape is None else \
            "[" + ",".join(format_dim(d) for d in self.shape) + "]"
        return f"{self.dtype.name}{shape}" + ("" if self.quant is None else str(self.quant))


@dataclass(frozen=True)
class SequenceType:
    """An ONNX sequence of tensors (SequenceConstruct, SplitToSequence, ...)."""

    elem: "TensorType | None" = None

    def __str__(self) -> str:
        return f"seq<{format_type(self.elem)}>"


@dataclass(frozen=True)
class OptionalType:
    """An ONNX optional: a tensor or sequence, or nothing."""

    elem: "TensorType | SequenceType | None" = None

    def __str__(self) -> str:
        return f"opt<{format_type(self.elem)}>"


Type = Union[TensorType, SequenceType, OptionalType]


def format_type(t) -> str:
    """The text spelling of a type: ``f32[1,3,N,?]``, ``i8[*]``, ``seq<f32[?]>``, ``?``."""
    return "?" if t is None else str(t)


def tensor(dt, shape=None, quant=None) -> TensorType:
    """Shorthand: ``tensor("f32", [1, 3, 224, 224])``."""
    return TensorType(to_dtype(dt), None if shape is None else tuple(shape), quant)


def broadcast_shapes(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """Numpy-style broadcast of two shapes with symbolic dimensions.

    Raises ValueError when two known dimensions differ and neither is 1.
    """
    out: list[Dim] = []
    for i in range(max(len(a), len(b))):
        x = a[len(a) - 1 - i] if i < len(a) else 1
        y = b[len(b) - 1 - i] if i < len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        elif isinstance(x, int) and isinstance(y, int):
            raise ValueError(f"shapes {list(a)} and {list(b)} cannot broadcast")
        elif isinstance(x, int):
            out.append(x)
        elif isinstance(y, int):
            out.append(y)
        else:
            out.append(None if x is None or y is None else x)
    return tuple(reversed(out))

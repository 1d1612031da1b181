"""What kernels check before they compute: the dtypes an operator accepts, axes in range,
attributes that became inputs; and the error a valid but unsupported case raises.

:func:`checked_kernel` registers a kernel whose numpy complaints (a shape that does not
broadcast, an index out of range) become one-line errors naming the node.
"""

from __future__ import annotations

import functools

import numpy as np

from npuc.ir.errors import NpucError, UnsupportedError

from . import kernel


def unsupported(ctx, what: str) -> UnsupportedError:
    """The error a kernel raises for a valid but unsupported attribute or type."""
    where = ctx.describe() if ctx is not None else "node"
    return UnsupportedError(f"{where}: {what} is not supported")


def _kind_ok(dtype, kinds) -> bool:
    dtype = np.dtype(dtype)
    if dtype.kind == "V":  # ml_dtypes: bfloat16 and float8 count as float, int4 as int
        return ("float" if "float" in dtype.name else "int") in kinds
    return ("float" in kinds and dtype.kind == "f") or ("int" in kinds and dtype.kind in "iu")


def accepts(*kinds):
    """Refuse (with an UnsupportedError) a first input whose dtype is not of ``kinds``."""

    def wrap(fn):
        @functools.wraps(fn)
        def checked(inputs, attrs, ctx):
            x = inputs[0] if inputs else None
            if x is not None and not _kind_ok(np.asarray(x).dtype, kinds):
                op = ctx.node.op_type if ctx.node is not None else fn.__name__
                raise unsupported(ctx, f"{op} on {np.asarray(x).dtype}")
            return fn(inputs, attrs, ctx)

        return checked

    return wrap


def checked_kernel(*op_types: str, domain: str = ""):
    """Register like :func:`kernel`; numpy's complaints about the data become NpucErrors.

    A shape that does not broadcast or an index out of range is a problem with the model
    or its inputs, so the user gets one line naming the node instead of a traceback.
    """

    def register(fn):
        @functools.wraps(fn)
        def run(inputs, attrs, ctx):
            try:
                return fn(inputs, attrs, ctx)
            except NpucError:
                raise
            except (ValueError, IndexError, ZeroDivisionError, MemoryError) as e:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise NpucError(f"{ctx.describe()}: {msg}") from e
            except KeyError as e:
                raise NpucError(f"{ctx.describe()}: missing attribute or input {e}") from e
            except TypeError as e:
                types = ", ".join(str(getattr(x, "dtype", type(x).__name__)) for x in inputs)
                raise UnsupportedError(f"{ctx.describe()}: inputs of type {types} are not "
                                       "supported") from e

        return kernel(*op_types, domain=domain)(run)

    return register


def normalize_axis(axis: int, rank: int, ctx) -> int:
    """``axis`` in ``[0, rank)``; negative axes count from the end."""
    axis = int(axis)
    if not -rank <= axis < max(rank, 1):
        raise NpucError(f"{ctx.describe()}: axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def normalize_axes(axes, rank: int, ctx) -> list[int]:
    """Axes in ``[0, rank)``, checked for duplicates."""
    out = [normalize_axis(a, rank, ctx) for a in axes]
    if len(set(out)) != len(out):
        raise NpucError(f"{ctx.describe()}: repeated axis in {list(axes)}")
    return out


def input_or_attr(inputs, index: int, attrs, name: str, ctx, since: int):
    """The value of an attribute that became input ``index`` in opset ``since``."""
    if ctx.opset >= since:
        v = inputs[index] if len(inputs) > index else None
        return None if v is None else [int(x) for x in np.asarray(v).reshape(-1).tolist()]
    v = attrs.get(name)
    return None if v is None else [int(x) for x in np.atleast_1d(v)]

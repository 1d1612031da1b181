"""What both kernel case runners need: attributes and opsets as the importer reads them."""

from __future__ import annotations

import numpy as np
import onnx

from npuc.ir.onnx_io import attr_from_proto


def node_attrs(node: onnx.NodeProto) -> dict:
    """The node's attributes as kernels receive them: the importer's own conversion."""
    return {a.name: attr_from_proto(a, {}, None, {}) for a in node.attribute}


def model_opset(model: onnx.ModelProto, domain: str = "") -> int:
    """The opset the model imports for ``domain`` (1 when it imports none)."""
    for imp in model.opset_import:
        if imp.domain == domain or (domain == "" and imp.domain == "ai.onnx"):
            return imp.version
    return 1


RTOL, ATOL = 1e-3, 1e-4


def value(v):
    """Case data as arrays: some cases keep tensors as TensorProto (float8, int4, ...)."""
    import onnx

    from npuc.ir.onnx_types import array_from_proto

    if isinstance(v, onnx.TensorProto):
        return array_from_proto(v)
    if isinstance(v, list):
        return [value(x) for x in v]
    return v


def equal(got, want, where: str) -> str | None:
    """None when ``got`` matches ``want`` (rtol 1e-3, atol 1e-4, NaNs equal, dtypes and
    shapes exact; sequences and optionals element by element), else what differs."""
    if want is None or got is None:
        return None if want is None and got is None else f"{where}: optional presence differs"
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{where}: sequence length differs"
        for i, (g, w) in enumerate(zip(got, want)):
            msg = equal(g, w, f"{where}[{i}]")
            if msg:
                return msg
        return None
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype and not (got.dtype.kind in "OU" and want.dtype.kind in "OU"):
        return f"{where}: dtype {got.dtype}, expected {want.dtype}"
    if got.shape != want.shape:
        return f"{where}: shape {list(got.shape)}, expected {list(want.shape)}"
    if want.dtype.kind in "OUS":
        return None if got.tolist() == want.tolist() else f"{where}: strings differ"
    g, w = got.astype(np.float64), want.astype(np.float64)
    if want.dtype.kind == "c":
        g, w = got.astype(np.complex128), want.astype(np.complex128)
    close = np.isclose(g, w, rtol=RTOL, atol=ATOL, equal_nan=True)
    if not close.all():
        err = np.abs(g - w)[~close]
        return f"{where}: {int((~close).sum())} of {close.size} values differ (max {err.max():.3g})"
    return None

"""The weight blob: every constant in its stored layout and format, where the memory plan
put it."""

from __future__ import annotations

import numpy as np

from ..schedule.slices import base_op
from ..schedule.storage import stored_array


def weight_layouts(graph, target) -> dict[str, str]:
    """``{constant: layout}`` for weights stored in a layout other than ONNX's.

    A chip that prefers NHWC reads convolution weights as OHWI (output channel, kernel
    rows, kernel columns, input channel); others keep OIHW.
    """
    if target.layout.preferred.upper() != "NHWC":
        return {}
    layouts: dict[str, str] = {}
    refused: set[str] = set()
    for node in graph.nodes:
        for i, v in enumerate(node.inputs):
            if v is None or v.const is None:
                continue
            if i == 1 and base_op(node) == "Conv" and v.const.ndim == 4:
                layouts[v.name] = "ohwi"
            else:
                refused.add(v.name)
    return {k: lay for k, lay in layouts.items() if k not in refused}


def stored_shape(shape, layout: str | None) -> tuple:
    """The shape of a weight of ``shape`` stored in ``layout`` (a scalar is stored as one
    element, as :func:`stored` makes it)."""
    shape = tuple(shape) or (1,)
    if layout == "ohwi":
        return (shape[0], shape[2], shape[3], shape[1])
    return shape


def stored(array, layout: str | None) -> np.ndarray:
    """``array`` in ``layout``, contiguous."""
    if layout == "ohwi":
        return np.ascontiguousarray(array.transpose(0, 2, 3, 1))
    return np.ascontiguousarray(array)


def weight_blob(plan, values, layouts) -> tuple[bytes, str]:
    """The weight blob in the order the plan gave, and its SHA-256.

    Each weight is written to a temporary file as it is converted to its stored form, and
    the blob is read back once: memory holds the blob one time (plus one weight), not the
    two or three copies that assembling it in a buffer and freezing that would take.
    """
    import hashlib
    import tempfile

    digest = hashlib.sha256()
    size = plan.peak("weights")
    with tempfile.TemporaryFile() as f:
        pos = 0
        for a in sorted(plan.in_space("weights"), key=lambda a: a.offset):
            data = stored(stored_array(values[a.name]), layouts.get(a.name))
            view = memoryview(data.reshape(-1).view("u1")) if data.size else b""
            pad = b"\0" * (a.offset - pos)
            for part in (pad, view):
                f.write(part)
                digest.update(part)
            pos = a.offset + len(view)
            del data, view
        tail = b"\0" * (size - pos)
        f.write(tail)
        digest.update(tail)
        f.seek(0)
        blob = f.read()
    return blob, digest.hexdigest()

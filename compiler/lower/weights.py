"""The weight blob: every constant in its stored layout and format, where the memory plan
put it."""

from __future__ import annotations

import numpy as np

from ..schedule.slices import base_op


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


def weight_blob(plan, values, layouts):
    """The weight blob in the order the plan gave (``bytes``, or a file-backed
    :class:`~.blob.Blob` when large), and its SHA-256.

    Each weight is converted to its stored form and written to a temporary file piece by
    piece, each piece's source pages given back after it: memory holds one piece at a
    time, never the blob. Runs of zeros (a hole of a sparse weights file, all-zero
    pieces, padding) are not written, so the file keeps them as holes; the digest covers
    them all the same.
    """
    import hashlib
    import tempfile

    from .blob import finish

    digest = hashlib.sha256()
    f = tempfile.TemporaryFile()
    pos = 0
    for a in sorted(plan.in_space("weights"), key=lambda a: a.offset):
        _zeros(digest, a.offset - pos)
        pos = a.offset
        for piece in _stored_pieces(values[a.name], layouts.get(a.name)):
            if isinstance(piece, int) or not piece.any():
                n = piece if isinstance(piece, int) else piece.nbytes
                _zeros(digest, n)
            else:
                n = piece.nbytes
                f.seek(pos)
                f.write(piece)
                digest.update(piece)
            pos += n
    size = plan.peak("weights")
    _zeros(digest, size - pos)
    return finish(f, size, digest.hexdigest()), digest.hexdigest()


_ZEROS = bytes(1 << 22)


def _zeros(digest, n: int) -> None:
    """Hash ``n`` zero bytes."""
    while n > 0:
        digest.update(memoryview(_ZEROS)[:min(n, len(_ZEROS))])
        n -= len(_ZEROS)


def _stored_pieces(value, layout):
    """The constant in its stored format and layout, as runs of its first axis: each a
    flat byte array, or the byte count of a run that lies in a hole (zeros, not read)."""
    from npuc.compiler.mapped import is_hole, release, row_pieces

    from ..schedule.storage import stored_dtype, stored_form

    c = np.asarray(value.const)
    itemsize = stored_dtype(value).numpy.itemsize if value.meta.get("stored") else c.itemsize
    for lo, hi in row_pieces(c):
        piece = c if c.ndim == 0 else c[lo:hi]
        if piece.size and is_hole(piece):
            yield piece.size * itemsize
            continue
        data = stored(stored_form(value, piece), layout)
        yield data.reshape(-1).view("u1")
        release(piece)

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


def weight_blob(plan, values, layouts, in_memory: int | None = None):
    """The weight blob in the order the plan gave (``bytes``, or a file-backed
    :class:`~.blob.Blob` when larger than ``in_memory`` bytes, by default
    :data:`~.blob.IN_MEMORY_BYTES`), and its digest (:func:`~.blob.digest`).

    Each weight is converted to its stored form and written to a temporary file piece by
    piece, each piece's source pages given back after it: memory holds one piece at a
    time, never the blob. Runs of zeros (a hole of a sparse weights file, all-zero
    pieces, padding) are not written, so the file keeps them as holes, and the digest
    does not read them.
    """
    import tempfile

    from .blob import IN_MEMORY_BYTES, Digester, finish

    f = tempfile.TemporaryFile()
    hasher = Digester()  # hashed as written: the file is not read back
    pos = 0
    scratch: dict = {}
    for a in sorted(plan.in_space("weights"), key=lambda a: a.offset):
        pos = a.offset
        for piece in _stored_pieces(values[a.name], layouts.get(a.name), scratch):
            if isinstance(piece, int) or not piece.any():
                pos += piece if isinstance(piece, int) else piece.nbytes
                continue
            f.seek(pos)
            f.write(piece)
            hasher.add(pos, piece)
            pos += piece.nbytes
    size = plan.peak("weights")
    f.truncate(size)
    f.flush()
    digest = hasher.hexdigest(size)
    limit = IN_MEMORY_BYTES if in_memory is None else in_memory
    return finish(f, size, digest, limit), digest


def _stored_pieces(value, layout, scratch: dict):
    """The constant in its stored format and layout, as runs of its first axis: each a
    flat byte array, or the byte count of a run that lies in a hole (zeros, not read).
    A piece converted to another format is made in ``scratch``'s buffer, reused from
    piece to piece (each is written before the next is made): fresh pages for every
    piece of gigabytes of weights cost more than the conversion."""
    from npuc.compiler.mapped import is_hole, release, row_pieces

    from ..schedule.storage import stored_dtype, stored_form

    c = np.asarray(value.const)
    itemsize = stored_dtype(value).numpy.itemsize if value.meta.get("stored") else c.itemsize
    for lo, hi in row_pieces(c):
        piece = c if c.ndim == 0 else c[lo:hi]
        if piece.size and is_hole(piece):
            yield piece.size * itemsize
            continue
        data = stored(stored_form(value, piece, scratch), layout)
        yield data.reshape(-1).view("u1")
        release(piece)

"""Tensor data an ONNX model keeps in files beside it: checked before anything is read
(inside the model's folder, regular files, byte counts that are numbers), then mapped
into memory rather than read, so that a model over 2 GB loads at once.
"""

from __future__ import annotations

import math
import os

import onnx
from onnx.external_data_helper import uses_external_data

from npuc.ir.errors import ModelError
from npuc.ir.safeio import check_input_file


def check_external_data(proto: onnx.ModelProto, where: str, base_dir: str | None) -> None:
    """Refuse external data that escapes the model's folder, is not a regular file, or
    whose offset or length is not a byte count."""
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors

    if base_dir is None:
        return
    root = os.path.realpath(base_dir)
    for t in _get_all_tensors(proto):
        if not uses_external_data(t):
            continue
        fields = {e.key: e.value for e in t.external_data}
        for key in ("offset", "length"):
            value = fields.get(key, "0")
            if not value.isdigit():
                raise ModelError(f"{where}: tensor '{t.name}' has external data {key} "
                                 f"{value!r}; it must be a whole number of bytes, 0 or more")
        loc = fields.get("location", "")
        if not loc or "\0" in loc:
            raise ModelError(f"{where}: tensor '{t.name}' has an invalid external data location "
                             f"{loc!r}")
        loc = ExternalDataInfo(t).location
        target = os.path.realpath(os.path.join(root, loc))
        if os.path.isabs(loc) or os.path.commonpath([root, target]) != root:
            raise ModelError(f"{where}: tensor '{t.name}' keeps its data at '{loc}', outside "
                             "the model's folder; refusing to read it")
        if not os.path.exists(target):
            raise ModelError(f"{where}: tensor '{t.name}' keeps its data in '{loc}', which "
                             "does not exist next to the model")
        check_input_file(target)


def map_external(t: onnx.TensorProto, base_dir: str, where: str):
    """Map a tensor's external data into memory (copy-on-write) instead of reading it.

    Large models load at once and only the pages used are read. Packed types (int4,
    float4) and strings go through onnx's reader instead (None).
    """
    import numpy as np
    from onnx.external_data_helper import ExternalDataInfo

    from npuc.ir.dtypes import BY_ONNX

    dt = BY_ONNX.get(t.data_type)
    if dt is None or dt.bits < 8 or dt.kind == "string":
        return None
    info = ExternalDataInfo(t)
    shape = tuple(int(d) for d in t.dims)
    count = math.prod(shape)
    need = count * dt.itemsize
    if info.length and int(info.length) != need:
        raise ModelError(f"{where}: tensor '{t.name}' has {info.length} bytes of external data, "
                         f"its shape {list(shape)} needs {need}")
    path = os.path.join(base_dir, info.location)
    offset = int(info.offset or 0)
    if offset + need > os.path.getsize(path):
        raise ModelError(f"{where}: tensor '{t.name}' reads past the end of '{info.location}'")
    if count == 0:
        return np.zeros(shape, dtype=dt.numpy)
    return np.memmap(path, dtype=dt.numpy, mode="c", offset=offset, shape=shape) \
        .view(np.ndarray)

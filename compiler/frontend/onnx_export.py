"""IR -> ONNX: a ModelProto that onnxruntime runs with the original's outputs."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper

from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph
from npuc.ir.onnx_io import graph_to_proto
from npuc.ir.safeio import write_file

PRODUCER = "npuc"
# Protobuf cannot hold a message of 2 GB; above this, weights go to a side file.
EXTERNAL_LIMIT = 2**31 - 2**26
EXTERNAL_MIN_BYTES = 1024
ALIGN = 4096


def export_onnx(graph: Graph, path: str | os.PathLike | None = None) -> onnx.ModelProto:
    """The graph as an ONNX model; also written to ``path`` when given.

    Constants become initializers; npuc operators (FusedConv, Attention, ...) are
    decomposed into the ONNX operators they stand for. When the weights pass 2 GB, the
    model is saved with its
    large tensors in ``<file>.data`` next to it, as ONNX requires; the returned proto then
    refers to that file.
    """
    from npuc import __version__
    from npuc.compiler.passes.decompose import decompose_npuc

    graph = decompose_npuc(graph)  # npuc operators become standard ONNX for onnxruntime
    weight_bytes = sum(v.const.nbytes for v in graph.constants.values())
    writer = None
    if weight_bytes >= EXTERNAL_LIMIT:
        if path is None:
            raise NpucError("the model's weights pass 2 GB; give a path so that they can be "
                            "written to a side file")
        writer = _ExternalWriter(os.fspath(path))
    try:
        gp = graph_to_proto(graph, tensor_hook=writer.tensor if writer else None)
        opset = dict(graph.opset) or {"": onnx.defs.onnx_opset_version()}
        imports = [helper.make_opsetid(d, v) for d, v in sorted(opset.items())]
        used = {n.domain for g in graph.all_graphs() for n in g.nodes}
        for d in sorted(used - set(opset)):
            imports.append(helper.make_opsetid(d, 1))
        model = helper.make_model(gp, opset_imports=imports, producer_name=PRODUCER,
                                  producer_version=__version__)
        model.ir_version = max(helper.find_min_ir_version_for(imports, ignore_unknown=True), 7)
        if path is not None:
            if writer:  # the weights first: the model, written last, makes the pair new
                writer.commit()
            write_file(os.fspath(path), model.SerializeToString(deterministic=True))
    finally:
        if writer:
            writer.discard()
    return model


class _ExternalWriter:
    """Streams large constants into ``<model>.data`` without copying them into protobuf."""

    def __init__(self, model_path: str):
        from npuc.ir.safeio import atomic_file

        self.location = os.path.basename(model_path) + ".data"
        self.final = os.path.join(os.path.dirname(os.path.abspath(model_path)), self.location)
        self._writer = atomic_file(self.final)
        self.file = self._writer.__enter__()
        self.offset = 0

    def tensor(self, value) -> onnx.TensorProto | None:
        arr = value.const
        dt = value.type.dtype
        if arr.nbytes < EXTERNAL_MIN_BYTES or dt.bits < 8 or dt.kind == "string":
            return None
        pad = (-self.offset) % ALIGN
        self.file.write(b"\0" * pad)
        self.offset += pad
        arr = np.asarray(arr, dtype=dt.numpy)
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        arr.tofile(self.file)
        t = onnx.TensorProto(name=value.name, data_type=dt.onnx, dims=list(arr.shape))
        t.data_location = onnx.TensorProto.EXTERNAL
        for key, val in (("location", self.location), ("offset", str(self.offset)),
                         ("length", str(arr.nbytes))):
            t.external_data.add(key=key, value=val)
        self.offset += arr.nbytes
        return t

    def commit(self) -> None:
        writer, self._writer = self._writer, None
        writer.__exit__(None, None, None)

    def discard(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            stop = NpucError("discarded")
            try:
                writer.__exit__(NpucError, stop, None)  # removes the temporary
            except NpucError:
                pass

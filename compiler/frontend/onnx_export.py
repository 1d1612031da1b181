"""IR -> ONNX: a ModelProto that onnxruntime runs with the original's outputs."""

from __future__ import annotations

import os

import onnx
from onnx import helper

from npuc.ir.graph import Graph
from npuc.ir.onnx_io import graph_to_proto

PRODUCER = "npuc"
TWO_GB = 2**31


def export_onnx(graph: Graph, path: str | os.PathLike | None = None) -> onnx.ModelProto:
    """The graph as an ONNX model; also written to ``path`` when given.

    Constants become initializers; npuc operators (FusedConv, Attention, ...) are
    decomposed into the ONNX operators they stand for. Models whose weights pass 2 GB are saved with their
    tensors in a side file ``<name>.data`` next to the model, as ONNX requires.
    """
    from npuc import __version__
    from npuc.compiler.passes.decompose import decompose_npuc

    graph = decompose_npuc(graph)  # npuc operators become standard ONNX for onnxruntime
    gp = graph_to_proto(graph)
    opset = dict(graph.opset) or {"": onnx.defs.onnx_opset_version()}
    imports = [helper.make_opsetid(d, v) for d, v in sorted(opset.items())]
    used = {n.domain for g in graph.all_graphs() for n in g.nodes}
    for d in sorted(used - set(opset)):
        imports.append(helper.make_opsetid(d, 1))
    model = helper.make_model(gp, opset_imports=imports, producer_name=PRODUCER,
                              producer_version=__version__)
    model.ir_version = helper.find_min_ir_version_for(imports, ignore_unknown=True)
    model.ir_version = max(model.ir_version, 7)
    if path is not None:
        save_onnx(model, os.fspath(path))
    return model


def save_onnx(model: onnx.ModelProto, path: str) -> None:
    """Write a model atomically; weights go to ``<file>.data`` above 2 GB."""
    tmp = f"{path}.tmp{os.getpid()}"
    big = model.ByteSize() >= TWO_GB if _small_enough_to_size(model) else True
    try:
        if big:
            data_name = os.path.basename(path) + ".data"
            onnx.save_model(model, tmp, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024)
        else:
            with open(tmp, "wb") as f:
                f.write(model.SerializeToString(deterministic=True))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _small_enough_to_size(model: onnx.ModelProto) -> bool:
    total = sum(len(t.raw_data) for t in model.graph.initializer)
    return total < TWO_GB - 2**26

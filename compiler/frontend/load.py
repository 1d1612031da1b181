"""One way to read and write models everywhere a command takes one.

A model argument is a path to an ``.onnx`` file, a path to an ``.npuir`` text IR file, or
``zoo:NAME`` for a model of the built-in zoo.
"""

from __future__ import annotations

import os

from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph

TEXT_SUFFIXES = (".npuir",)


def load_model(spec, infer_shapes: bool = True) -> Graph:
    """A Graph from ``zoo:NAME``, an ``.onnx`` path, an ``.npuir`` path or a ModelProto."""
    graph = _load(spec, infer_shapes)
    if any(n.domain == "npuc" for g in graph.all_graphs() for n in g.nodes):
        from npuc.compiler import ops  # noqa: F401  (npuc's operators: schemas, kernels)
    return graph


def _load(spec, infer_shapes: bool) -> Graph:
    import onnx

    from .onnx_import import import_onnx

    if isinstance(spec, Graph):
        return spec
    if isinstance(spec, onnx.ModelProto):
        return import_onnx(spec, infer_shapes)
    spec = os.fspath(spec)
    if spec.startswith("zoo:"):
        from npuc.compiler import zoo

        if zoo.has_external_weights(spec[4:]):
            return import_onnx(zoo.model_path(spec[4:]), infer_shapes)
        return import_onnx(zoo.build(spec[4:]), infer_shapes, source=spec)
    if spec.endswith(TEXT_SUFFIXES):
        from npuc.ir.parser import load_text

        if os.path.isdir(spec):
            raise NpucError(f"{spec}: is a folder, not a text IR file")
        if not os.path.exists(spec):
            raise NpucError(f"{spec}: no such file")
        from npuc.ir.safeio import check_input_file

        check_input_file(spec)
        graph = load_text(spec)
        check_declared_types(graph, spec)
        return graph
    return import_onnx(spec, infer_shapes)


def check_declared_types(graph: Graph, where: str) -> None:
    """Each type a text IR file declares must be one its node can produce: a hand-edited
    file that says otherwise is refused, naming the node (npuc would trust it)."""
    from npuc.ir.infer import infer_node
    from npuc.ir.limits import SizeError, check_type
    from npuc.ir.types import TensorType

    for v in graph.values():
        check_type(v.type, f"{where}: %{v.name}")
    for node in graph.nodes:
        try:
            inferred = infer_node(node)
        except SizeError as e:
            raise NpucError(f"{where}: {e}") from None
        except Exception:  # what inference cannot follow is left as declared
            continue
        for v, t in zip(node.outputs, inferred):
            d = None if v is None else v.type
            if not isinstance(d, TensorType) or not isinstance(t, TensorType):
                continue
            same_rank = d.shape is None or t.shape is None or len(d.shape) == len(t.shape)
            dims_agree = same_rank and (d.shape is None or t.shape is None or all(
                a == b for a, b in zip(d.shape, t.shape)
                if isinstance(a, int) and isinstance(b, int)))
            if d.dtype != t.dtype or not dims_agree:
                raise NpucError(f"{where}: {node.describe()} declares %{v.name} as {d}, but "
                                f"it produces {t}")


def save_model(graph: Graph, path) -> None:
    """Write ``.onnx`` or ``.npuir`` (with its side file) according to the suffix."""
    from npuc.ir.safeio import check_output_file

    path = os.fspath(path)
    check_output_file(path)
    if path.endswith(TEXT_SUFFIXES):
        from npuc.ir.parser import save_text

        save_text(graph, path)
    elif path.endswith(".onnx"):
        from .onnx_export import export_onnx

        export_onnx(graph, path)
    else:
        raise NpucError(f"{path}: unknown output format; use a .onnx or .npuir file name")

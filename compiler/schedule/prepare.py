"""Getting a model ready to schedule: every shape known, shape arithmetic folded.

Scheduling needs static shapes: :func:`load_static` gives symbolic dimensions their
values (``--shape``, the inputs given, the batch; see :mod:`.shapes`; each said in the
decision log) before shape inference, and refuses a model with one left unset.

:func:`fold_constants` (npuc's one constant folder,
:mod:`npuc.compiler.passes.fold_constants`) computes, once, every node whose inputs are
all constants (the ``Shape -> Gather -> Concat -> Reshape`` arithmetic exporters leave
behind, now that the shapes are fixed). The driver runs it after ``npuc.optimize``, whose
``-O0`` leaves such arithmetic in place.
"""

from __future__ import annotations

import os

from npuc.compiler.passes.fold_constants import fold_constants, fold_node  # noqa: F401
from npuc.ir.decisions import log_of
from npuc.ir.graph import subgraphs
from npuc.ir.types import TensorType

from .recurrent import unroll_recurrent
from .shapes import proto_signature, resolve, set_proto_shapes

# External data past this size stays in its file, mapped into memory on import, rather
# than read into the ModelProto (which then cannot serve as onnxruntime's reference).
EXTERNAL_IN_MEMORY_LIMIT = 1 << 31


def load_static(spec, batch: int = 1, shapes=None, given: dict | None = None,
                reference: bool = True):
    """``(graph, proto)``: the model with static shapes, and its ONNX form when it has one
    (the reference for verification). ``reference=False``: an ``.onnx`` path is imported
    without reading it into a proto (its external data mapped, not read), proto None.

    ``shapes`` is a :class:`~npuc.compiler.schedule.shapes.ShapeSet` (``--shape``),
    ``given`` the shapes of input arrays the user gave; see :func:`shapes.resolve`."""
    import onnx

    from npuc.compiler.frontend.load import load_model
    from npuc.compiler.frontend.onnx_import import import_onnx
    from npuc.ir.errors import ModelError, NpucError
    from npuc.ir.safeio import check_input_file

    proto, base_dir, arrays = None, None, None
    if isinstance(spec, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(spec)
    elif isinstance(spec, (str, os.PathLike)) and os.fspath(spec).startswith("zoo:"):
        from npuc.compiler import zoo

        name = os.fspath(spec)[4:]
        if zoo.has_external_weights(name):
            spec = zoo.model_path(name)
        else:
            # without a reference, the large weights never enter the proto
            arrays = None if reference else {}
            proto = zoo.build(name, batch=batch, arrays=arrays)
    if proto is None and reference and isinstance(spec, (str, os.PathLike)) and \
            os.fspath(spec).endswith(".onnx"):
        path = os.fspath(spec)
        if not os.path.exists(path):
            raise NpucError(f"{path}: no such file")
        check_input_file(path)
        try:
            proto = onnx.load(path, load_external_data=False)
        except Exception as e:  # onnx raises DecodeError and friends
            raise ModelError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None
        base_dir = _load_external(proto, path)
    if proto is not None:
        where = os.fspath(spec) if isinstance(spec, (str, os.PathLike)) else \
            (proto.graph.name or "the model")
        fixed, notes = resolve(proto_signature(proto), shapes, batch, given, where)
        source = None
        if reference:  # a copy as large as the weights
            source = onnx.ModelProto()
            source.CopyFrom(proto)
        set_proto_shapes(proto, fixed)
        graph = import_onnx(proto, source=_source(spec), base_dir=base_dir, arrays=arrays)
        # the model as given: onnxruntime runs it for any consistent input sizes, where the
        # static copy may fail its stricter checks (a branch that cannot take these sizes)
        graph.meta["source_proto"] = source
    else:
        graph = load_model(spec)
        where = os.fspath(spec) if isinstance(spec, (str, os.PathLike)) else None
        notes = _fix_graph(graph, batch, shapes, given, where=where)
    for v in graph.outputs:
        if v.const is not None:
            raise NpucError(f"graph output '{v.name}' is a constant (an initializer), not "
                            "computed by any node; npuc compiles only computed outputs")
    for note in notes:
        log_of(graph).record("prepare", note.split("'")[1], "static shape", note)
    settle_shapes(graph)
    if unroll_recurrent(graph):
        settle_shapes(graph)
    _refuse_empty(graph)
    return graph, proto


def _refuse_empty(graph) -> None:
    """A tensor with a dimension of 0 has nothing to tile or schedule: say which."""
    from npuc.ir.errors import NpucError

    for v in graph.inputs:
        if isinstance(v.type, TensorType) and v.type.is_static and 0 in v.type.shape:
            raise NpucError(f"input '{v.name}' has shape {list(v.type.shape)}, with a "
                            "dimension of 0; npuc compiles only non-empty tensors")
    for node in graph.nodes:
        for v in node.outputs:
            if v is not None and isinstance(v.type, TensorType) and v.type.is_static \
                    and 0 in v.type.shape:
                raise NpucError(f"{node.describe()}: its output '{v.name}' has shape "
                                f"{list(v.type.shape)}, with a dimension of 0; npuc compiles "
                                "only non-empty tensors")


def _load_external(proto, path: str) -> str | None:
    """Read a model's external data once it is checked (inside its folder, regular files,
    byte offsets and lengths that fit the data); None. Past
    :data:`EXTERNAL_IN_MEMORY_LIMIT` bytes the data stays in its files, mapped on import:
    the folder to map it from."""
    from onnx.external_data_helper import (
        ExternalDataInfo,
        _get_all_tensors,
        load_external_data_for_model,
        uses_external_data,
    )

    from npuc.compiler.frontend.external_data import check_external_data
    from npuc.ir.errors import ModelError

    base_dir = os.path.dirname(os.path.abspath(path))
    check_external_data(proto, path, base_dir)
    external = sum(int(ExternalDataInfo(t).length or 0) for t in _get_all_tensors(proto)
                   if uses_external_data(t))
    if external > EXTERNAL_IN_MEMORY_LIMIT:
        return base_dir
    try:
        load_external_data_for_model(proto, base_dir)
    except Exception as e:  # onnx's reader: a length or offset beyond the file, and so on
        raise ModelError(f"{path}: cannot read its external data ({type(e).__name__}: "
                         f"{str(e).strip()[:120]})") from None
    return None


def _source(spec) -> str | None:
    """How messages name the model the user gave: its path or ``zoo:NAME``."""
    return os.fspath(spec) if isinstance(spec, (str, os.PathLike)) else None


FOLD_LIMIT = 1 << 16  # elements: shape arithmetic is small; real tensors are not folded here


def settle_shapes(graph) -> int:
    """Make every shape known in one pass in order; the number of nodes folded.

    Exporters compute reshape targets from ``Shape`` of earlier tensors, in chains that
    onnx's inference cannot always follow. With the inputs' shapes fixed, one walk in
    order settles them all: a ``Shape`` of a known tensor becomes a constant, a small node
    whose inputs are all constants is computed (with the executor's kernels), an ``If``
    whose condition has become a constant is replaced by its branch (whose nodes are
    walked next), and every other node has its output types inferred from its, by then
    known, inputs. Subgraphs left (a condition known only at run time) are settled the
    same way, inside.
    """
    from .control_flow import infer_control, inline_branch

    folded = 0
    node = graph.first
    while node is not None:
        nxt = node.next
        if node.op_type == "If" and node.domain in ("", "ai.onnx"):
            first = inline_branch(graph, node)
            if first is not None or node.graph is None:
                folded += 1
                node = first or nxt
                continue
        if fold_node(graph, node, FOLD_LIMIT):
            folded += 1
            node = nxt
            continue
        for sub in subgraphs(node):
            folded += settle_shapes(sub)
        _infer_outputs(node, infer_control if subgraphs(node) else None)
        node = nxt
    return folded


def _infer_outputs(node, rule=None) -> None:
    from npuc.ir.infer import infer_node

    outs = [v for v in node.outputs if v is not None]
    if all(isinstance(v.type, TensorType) and v.type.is_static for v in outs):
        return
    try:
        types = rule(node) if rule is not None else infer_node(node)
    except Exception:  # a node inference cannot handle keeps the type it has
        return
    for v, t in zip(node.outputs, types):
        if v is not None and isinstance(t, TensorType) and t.is_static:
            v.type = t if not isinstance(v.type, TensorType) or v.type.quant is None \
                else t.with_quant(v.type.quant)


def specialise(graph, shapes) -> list[str]:
    """Set the input shapes ``--shape`` gives (a ShapeSet) and infer the rest again; the
    dimensions it does not name stay symbolic. The notes of what was set."""
    return _fix_graph(graph, None, shapes, None, strict=False)


def _fix_graph(graph, batch, shapes, given, strict: bool = True,
               where: str | None = None) -> list[str]:
    """Give the graph's inputs their static shapes; ``where`` (the file the user gave,
    else the graph's name) starts a refusal."""
    from npuc.ir.infer import infer_graph

    signature = [(v.name, list(v.type.shape)) for v in graph.inputs
                 if isinstance(v.type, TensorType) and v.type.shape is not None]
    fixed, notes = resolve(signature, shapes, batch, given,
                           where or graph.name or "the model", strict)
    changed = False
    for v in graph.inputs:
        if v.name in fixed and tuple(v.type.shape) != fixed[v.name]:
            v.type = v.type.with_shape(list(fixed[v.name]))
            changed = True
    if changed:
        infer_graph(graph, overwrite=True)
    return notes

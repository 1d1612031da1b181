"""Control flow in a compiled program: folded where known, run on the host where not.

Exporters write ``If`` for what the model does differently by input shape or sample rate,
``Loop`` and ``Scan`` for recurrences. Once the input shapes are fixed most ``If``
conditions are constants (``Equal(Gather(Shape(x), 1), 1)``): :func:`inline_branch`
replaces such an ``If`` by the nodes of the branch it takes, so the NPU sees plain
operators. What is left (a condition read from an input, a loop over a run-time count)
runs on the host CPU as one command of the program (:func:`host_reason` says why), its
subgraphs executed by the CPU command path, priced by :func:`host_nodes`.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.graph import subgraphs
from npuc.ir.types import TensorType

CONTROL_FLOW = {"If", "Loop", "Scan", "SequenceMap"}


def is_control_flow(node) -> bool:
    """A node that holds subgraphs (If branches, Loop and Scan bodies)."""
    return bool(subgraphs(node))


def known_condition(node) -> bool | None:
    """The value of an ``If``'s condition when it is a constant, else None."""
    cond = node.inputs[0] if node.op_type == "If" and node.inputs else None
    if cond is None or cond.const is None or np.asarray(cond.const).size != 1:
        return None
    return bool(np.asarray(cond.const).reshape(-1)[0])


def inline_branch(graph, node):
    """Replace an ``If`` whose condition is known by the nodes of its branch; the first
    node put in its place (None when the branch has no node, or the condition is not
    known)."""
    taken = known_condition(node)
    if taken is None:
        return None
    branch = node.attrs["then_branch" if taken else "else_branch"]
    first = None
    for v in list(branch.constants.values()):
        branch.constants.pop(v.name)
        v.graph = graph
        graph.constants[v.name] = v
    for inner in list(branch.nodes):
        branch.unlink(inner)
        graph.insert(inner, before=node)
        for v in inner.outputs:
            if v is not None:
                v.graph = graph
        for sub in subgraphs(inner):
            sub.parent = graph
        first = first or inner
    for k, (out, result) in enumerate(zip(node.outputs, branch.outputs)):
        if out is None:
            continue
        if any(o is out for o in graph.outputs):
            # a graph output keeps its name: an Identity passes the branch's value to it
            ident = graph.create_node("Identity", [result], [("t", out.type)],
                                      name=f"{node.name}_result{k}", before=node)
            graph.release_name(ident.outputs[0].name)
            ident.outputs[0] = out
            out.producer, out.index = ident, 0
            node.outputs[k] = None
            first = first or ident
        else:
            out.replace_all_uses_with(result)
    log_of(graph).record("prepare", node.name or "If", "If folded",
                         f"its condition is {str(taken).lower()} once the input shapes and "
                         f"constants are fixed: the {'then' if taken else 'else'} branch "
                         "replaces it")
    graph.remove_node(node)
    return first


def infer_if(node) -> list:
    """An ``If``'s output types: those its branches agree on (None where they do not)."""
    if node.op_type != "If":
        return [None] * len(node.outputs)
    then, other = node.attrs["then_branch"].outputs, node.attrs["else_branch"].outputs
    out = []
    for a, b in zip(then, other):
        ta, tb = a.type, b.type
        same = isinstance(ta, TensorType) and isinstance(tb, TensorType) and \
            ta.is_static and tb.is_static and ta.shape == tb.shape and ta.dtype == tb.dtype
        out.append(ta if same else None)
    return out


def host_reason(node) -> str:
    """Why a control-flow node runs on the host CPU (for the decision log and explain)."""
    if node.op_type == "If":
        cond = node.inputs[0]
        return (f"control flow: the condition %{cond.name} is only known at run time, so the "
                "If runs on the host CPU, which executes the branch it takes")
    if node.op_type == "Loop":
        return ("control flow: the Loop's trip count or condition is computed at run time; "
                "the host CPU runs its body once per iteration")
    return (f"control flow: {node.op_type} runs its body once per step on the host CPU "
            "(npuc does not unroll it onto the NPU)")


def host_nodes(node) -> tuple[list, float]:
    """The nodes that price a control-flow node on the host, and how many times each runs.

    An If is priced at its dearer branch (by node count); a Loop at its body times a
    constant trip count (one iteration when the count is only known at run time); a Scan
    at its body times the scanned length."""
    from npuc.targets.work import gemm_views, vector_elements

    def priceable(g):
        found = []
        for n in g.nodes:
            if subgraphs(n):
                inner, times = host_nodes(n)
                found += inner * max(1, int(times))
                continue
            try:
                gemm_views(n)
                vector_elements(n)
            except Exception:  # a shape only known at run time: not priced, said below
                continue
            found.append(n)
        return found

    if node.op_type == "If":
        branches = [priceable(g) for g in subgraphs(node)]
        return max(branches, key=len) if branches else [], 1.0
    times = 1.0
    if node.op_type == "Loop" and node.inputs and node.inputs[0] is not None and \
            node.inputs[0].const is not None:
        times = float(np.asarray(node.inputs[0].const).reshape(-1)[0])
    elif node.op_type == "Scan":
        n_scan = int(node.attrs.get("num_scan_inputs", 1))
        first = node.inputs[len(node.inputs) - n_scan] if n_scan else None
        shape = getattr(getattr(first, "type", None), "shape", None)
        if shape and isinstance(shape[0], int):
            times = float(shape[0])
    body = [priceable(g) for g in subgraphs(node)]
    return (body[0] if body else []), times

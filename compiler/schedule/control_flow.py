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
    """An ``If``'s output types: those its branches agree on.

    A program has static shapes; when the branches disagree for these input sizes (a
    model's 8 kHz path fed a 16 kHz frame computes other shapes, or none), the program is
    compiled for the then branch's (else the one that has a static type), the decision
    log says so, and running the other branch is an error that names the tensor."""
    if node.op_type != "If":
        return [None] * len(node.outputs)
    then, other = node.attrs["then_branch"].outputs, node.attrs["else_branch"].outputs
    out = []
    for a, b in zip(then, other):
        ta, tb = (v.type if isinstance(v.type, TensorType) and v.type.is_static else None
                  for v in (a, b))
        same = ta is not None and tb is not None and ta.shape == tb.shape and \
            ta.dtype == tb.dtype
        if not same and (ta or tb) is not None:
            known, odd = ("then", b) if ta is not None else ("else", a)
            log_of(node.graph).record(
                "prepare", node.name or "If", "branch shapes",
                f"the branches give this output different shapes for these input sizes "
                f"(%{odd.name} is {odd.type}); the program is compiled for the {known} "
                f"branch's {ta or tb}, and taking the other branch is an error")
        out.append(ta or tb)
    return out


def infer_loop(node) -> list:
    """A ``Loop``'s output types: a carried value keeps its type (the body's, when it is
    static, else the initial value's); a scanned output stacks the body's over a constant
    trip count."""
    body = node.attrs["body"]
    carried = list(node.inputs[2:])
    out = []
    for k in range(len(node.outputs)):
        inner = body.outputs[k + 1] if k + 1 < len(body.outputs) else None
        t = inner.type if inner is not None and isinstance(inner.type, TensorType) else None
        if k < len(carried):
            start = carried[k].type if carried[k] is not None else None
            out.append(t if t is not None and t.is_static else start)
            continue
        trips = node.inputs[0].const if node.inputs and node.inputs[0] is not None else None
        if trips is not None and t is not None and t.is_static:
            out.append(t.with_shape([int(np.asarray(trips).reshape(-1)[0]), *t.shape]))
        else:
            out.append(None)
    return out


def infer_control(node) -> list:
    """Output types of a control-flow node from its subgraphs (see the two above)."""
    if node.op_type == "If":
        return infer_if(node)
    if node.op_type == "Loop":
        return infer_loop(node)
    return [None] * len(node.outputs)


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


MAX_PRICED = 1 << 14  # nodes one CPU group is priced with: a long loop is priced by a sample


def host_priced(nodes) -> list:
    """The nodes that price a CPU group: control flow replaced by what it runs."""
    out = []
    for n in nodes:
        if not is_control_flow(n):
            out.append(n)
            continue
        inner, times = host_nodes(n)
        out += (inner * max(1, int(times)))[:MAX_PRICED] if inner else \
            ([n] if all(isinstance(getattr(v, "type", None), TensorType) and v.type.is_static
                        for v in n.outputs if v is not None) else [])
    return out


def host_nodes(node) -> tuple[list, float]:
    """The nodes that price a control-flow node on the host, and how many times each runs.

    An If is priced at its dearer branch (by node count); a Loop at its body times a
    constant trip count (one iteration when the count is only known at run time); a Scan
    at its body times the scanned length."""
    def priceable(g):
        found = []
        for n in g.nodes:
            if subgraphs(n):
                inner, times = host_nodes(n)
                found += inner * max(1, int(times))
                continue
            if all(isinstance(v.type, TensorType) and v.type.is_static
                   for v in list(n.inputs) + list(n.outputs) if v is not None):
                found.append(n)  # a shape only known at run time is not priced
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

"""Cutting a graph into pipeline stages, one per chip.

The nodes, in the graph's order, are cut into ``chips`` consecutive runs whose estimated
times (the cost model's estimate of each node alone on the chip) are as even as the
order allows: the cut after stage ``k`` is the first node where the running total
reaches ``k / chips`` of the whole. Each stage becomes a graph of its own: its inputs are
the model inputs and the tensors earlier stages made that it reads; its outputs are the
tensors later stages (or the model's outputs) need. Every node computes exactly what it
computed in the whole graph, so the stages together give the same bits.
"""

from __future__ import annotations

from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph, Node


def node_seconds(node, target) -> float:
    """The node's estimated time alone on ``target`` (0 when it has none)."""
    from npuc.targets.cost import estimate_node

    try:
        return estimate_node(node, target).seconds
    except (NpucError, KeyError, ValueError, TypeError, ZeroDivisionError):
        return 0.0


def pipeline_cuts(graph, chips: int, target) -> list[list]:
    """The nodes of each stage, consecutive in the graph's order."""
    nodes = list(graph.nodes)
    if chips < 1:
        raise NpucError("--chips must be at least 1")
    if chips > len(nodes):
        raise NpucError(f"{chips} chips for a graph of {len(nodes)} nodes: at most one chip "
                        "per node")
    costs = [node_seconds(n, target) for n in nodes]
    total = sum(costs) or float(len(nodes))
    if not sum(costs):
        costs = [1.0] * len(nodes)
    stages, current, running, k = [], [], 0.0, 1
    for i, (node, cost) in enumerate(zip(nodes, costs)):
        current.append(node)
        running += cost
        left_nodes, left_stages = len(nodes) - i - 1, chips - len(stages) - 1
        if left_stages and (running >= total * k / chips or left_nodes == left_stages):
            stages.append(current)
            current, k = [], k + 1
    stages.append(current)
    return stages


def stage_graph(graph, nodes: list, index: int, later_reads: set[str]) -> Graph:
    """The graph of one stage: ``nodes`` with the values they read from outside as
    inputs, and the values read by later stages (names in ``later_reads``) or by the
    model's outputs as outputs."""
    g = Graph(f"{graph.name}.chip{index}")
    g.opset = dict(graph.opset)
    g.meta = {k: v for k, v in graph.meta.items()}
    mapped = {}

    def value(v):
        if v is None:
            return None
        if id(v) not in mapped:
            if v.const is not None:
                mapped[id(v)] = g.add_constant(v.name, v.const, v.type)
            else:
                mapped[id(v)] = g.add_input(v.name, v.type)
        return mapped[id(v)]

    for node in nodes:
        new = Node(node.op_type, node.domain, dict(node.attrs), node.name)
        new.meta = dict(node.meta)
        for v in node.inputs:
            new.add_input(value(v))
        for i, v in enumerate(node.outputs):
            if v is None:
                new.outputs.append(None)
                continue
            out = type(v)(v.name, v.type)
            g._claim(out)
            out.producer, out.index = new, i
            new.outputs.append(out)
            mapped[id(v)] = out
        new.graph = g
        g.insert(new)
    model_outputs = {v.name for v in graph.outputs}
    for node in nodes:
        for v in node.outputs:
            if v is not None and (v.name in later_reads or v.name in model_outputs):
                g.outputs.append(mapped[id(v)])
    inputs = {id(v) for v in graph.inputs}
    for v in graph.outputs:  # a model output that is a model input or a constant
        if index == 0 and (v.const is not None or id(v) in inputs):
            g.outputs.append(value(v))
    return g


def split(graph, chips: int, target) -> list[Graph]:
    """The stage graphs of ``graph`` over ``chips`` chips."""
    stages = pipeline_cuts(graph, chips, target)
    graphs = []
    for i, nodes in enumerate(stages):
        later = {v.name for s in stages[i + 1:] for n in s for v in n.inputs if v is not None}
        graphs.append(stage_graph(graph, nodes, i, later))
    return graphs

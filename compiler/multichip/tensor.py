"""Tensor parallelism: every chip holds a slice of each weight matrix.

Each ``MatMul`` by a 2-D constant weight ``[K, N]`` with ``N`` divisible by the chip count
is split by columns: chip ``c`` multiplies by ``W[:, c*N/n : (c+1)*N/n]`` and gets that
slice of the output; an ``all_gather`` command then gives every chip the whole output,
slices in chip order along the last axis, and the graph goes on. What lies between two
such products (norms, rotary embeddings, attention, the gated MLP's products) runs on
every chip. Every output element is computed by one chip with the same dot product as on
one chip, so the result is bit-identical to the single-chip IR (no partial sums are
added across chips, so no reduction order enters).

The program of a chip is the list of its *segments*: the nodes between two gathers,
each scheduled and lowered as a program of its own, ending with the ``all_gather``
command that joins the chips; the simulator runs segment ``s`` of every chip, then the
gather, then segment ``s + 1``.
"""

from __future__ import annotations

import numpy as np

from .partition import stage_graph


def split_products(graph, chips: int) -> list:
    """The MatMul nodes split by columns over ``chips`` chips."""
    found = []
    for node in graph.nodes:
        if node.op_type != "MatMul" or node.domain or len(node.inputs) != 2:
            continue
        w = node.inputs[1]
        if w is None or w.const is None or w.const.ndim != 2:
            continue
        if w.const.shape[1] % chips == 0 and w.const.shape[1] >= chips:
            found.append(node)
    return found


def _part_name(value) -> str:
    return value.name + ".part"


def chip_graph(graph, chips: int, chip: int):
    """A copy of ``graph`` in which each split product multiplies by chip ``chip``'s
    columns and writes ``NAME.part``; NAME itself has no producer (the gather makes it)."""
    from npuc.ir.graph import Value

    g = graph.copy()
    g.meta = dict(graph.meta)
    for node in split_products(g, chips):
        w, y = node.inputs[1], node.outputs[0]
        cols = w.const.shape[1] // chips
        part_w = g.add_constant(f"{w.name}.chip{chip}",
                                np.ascontiguousarray(w.const[:, chip * cols:(chip + 1) * cols]))
        node.set_input(1, part_w)
        shape = list(y.type.shape)
        shape[-1] = cols
        part = Value(_part_name(y), y.type.with_shape(tuple(shape)))
        g._claim(part)
        part.producer, part.index = node, 0
        node.outputs[0] = part
        y.producer = None
    return g


def segments(graph, chips: int) -> list[list[str]]:
    """Node names of each segment: the nodes up to and including each split product."""
    split = {n.name for n in split_products(graph, chips)}
    out, current = [], []
    for node in graph.nodes:
        current.append(node.name)
        if node.name in split:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def segment_graphs(graph, chips: int, chip: int) -> list:
    """The graphs of chip ``chip``'s segments, each with the ``.part`` it gathers as an
    output when it ends with a split product."""
    g = chip_graph(graph, chips, chip)
    by_name = {n.name: n for n in g.nodes}
    parts = segments(graph, chips)
    graphs = []
    for s, names in enumerate(parts):
        nodes = [by_name[n] for n in names]
        later = {v.name for rest in parts[s + 1:] for n in rest for v in by_name[n].inputs
                 if v is not None}
        last = nodes[-1].outputs[0]
        if last is not None and last.name.endswith(".part"):
            later.add(last.name)
        graphs.append(stage_graph(g, nodes, s, later))
    return graphs

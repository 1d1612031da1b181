"""Tensor parallelism: every chip holds a slice of each weight matrix.

Two splits, as in Megatron-LM:

- **by columns**: a ``MatMul`` by a 2-D constant weight ``[K, N]`` (or an
  ``npuc::GatedMLP``, whose gate and up weights are split alike) with ``N`` divisible by
  the chip count: chip ``c`` multiplies by ``W[:, c*N/n : (c+1)*N/n]`` and gets that slice
  of the output. Every output element is computed by one chip with the same dot product
  as on one chip, so it is bit-identical to the single-chip IR. An ``all_gather`` then
  gives every chip the whole output, slices in chip order along the last axis;
- **by rows, after a column split**: when a column-split product's only reader is a
  ``MatMul`` by a weight ``[K, N]`` (the MLP's down projection after its gate and up),
  the slice is not gathered: chip ``c`` multiplies it by rows ``c*K/n : (c+1)*K/n`` of
  the weight and gets a partial sum of the whole output, and an ``all_reduce`` adds the
  chips' partial sums. The sum's order is fixed: float32, chip 0's partial plus chip 1's,
  then chip 2's, ... (a ring's reduce-scatter adds in another order per chunk, which
  changes the last bits only). A dot product cut into partial sums is not the single
  chip's dot product, so these outputs agree with the single-chip IR within the
  precision's tolerance, not bit for bit.

An attention is split by heads (:mod:`.heads`): its Q/K/V projections by columns, its
output projection by rows, joined by one ``all_reduce``. What lies between (norms,
rotary embeddings) runs on every chip. Weight slices
are views of the weights, never copies: a mapped weight stays in its file.

The program of a chip is the list of its *segments*: the nodes between two collectives,
each scheduled and lowered as a program of its own, ending with the collective; the
simulator runs segment ``s`` of every chip, then the collective, then segment ``s + 1``.
"""

from __future__ import annotations

from .partition import stage_graph

PART, PARTIAL = ".part", ".partial"


def _weights(node) -> list[int]:
    """The input indices of a node's column-split weights ([] when it is not one)."""
    if node.domain == "" and node.op_type == "MatMul" and len(node.inputs) == 2:
        return [1]
    if node.domain == "npuc" and node.op_type == "GatedMLP" and len(node.inputs) == 3:
        return [1, 2]
    return []


def _matrix(v, chips: int, axis: int) -> bool:
    return v is not None and v.const is not None and v.const.ndim == 2 and \
        v.const.shape[axis] % chips == 0 and v.const.shape[axis] >= chips


def split_products(graph, chips: int, skip=frozenset()) -> list:
    """The nodes split by columns over ``chips`` chips (but those in ``skip``)."""
    found = []
    for node in graph.nodes:
        which = [] if node.name in skip else _weights(node)
        if which and all(_matrix(node.inputs[i], chips, 1) for i in which) and \
                len({node.inputs[i].const.shape for i in which}) == 1:
            found.append(node)
    return found


ELEMENTWISE = {"Cast", "Identity", "Relu", "Gelu", "Sigmoid", "Tanh", "QuantizeLinear",
               "DequantizeLinear"}


def _chain(y, graph) -> tuple[list, object, int] | None:
    """``(values, reader, index)``: from ``y`` through single-reader elementwise nodes
    (their other inputs scalar constants: a rounding's Cast pair, an activation) to the
    first other reader; None when a value has several readers or is a model output."""
    values = [y]
    while True:
        v = values[-1]
        if len(v.uses) != 1 or v in graph.outputs:
            return None
        node, index = v.uses[0]
        scalars = all(u is None or (u.const is not None and u.const.size == 1)
                      for k, u in enumerate(node.inputs) if k != index)
        if node.domain == "" and node.op_type in ELEMENTWISE and index == 0 and scalars \
                and len(node.outputs) == 1:
            values.append(node.outputs[0])
            continue
        return values, node, index


def row_splits(graph, chips: int, skip=frozenset()) -> dict:
    """``{column-split node name: (values kept sliced, MatMul split by rows)}``: the
    MatMul that is the only reader of a column-split output (through elementwise nodes),
    by a weight of as many rows."""
    out, readers = {}, set()
    for node in split_products(graph, chips, skip):
        if node.name in readers:
            continue  # split by rows already, as the reader of an earlier product
        found = _chain(node.outputs[0], graph) if node.outputs[0] is not None else None
        if found is None:
            continue
        values, m, index = found
        if m.domain == "" and m.op_type == "MatMul" and index == 0 and \
                _matrix(m.inputs[1], chips, 0) and \
                m.inputs[1].const.shape[0] == values[0].type.shape[-1] and \
                m.name not in skip:
            out[node.name] = (values, m)
            readers.add(m.name)
    return out


def _rename_output(g, node, suffix: str, last: int | None):
    """Give ``node``'s output the name ``NAME+suffix`` (its last axis ``last`` long when
    given); NAME itself is left without a producer, for the collective to make."""
    from npuc.ir.graph import Value

    y = node.outputs[0]
    shape = list(y.type.shape)
    if last is not None:
        shape[-1] = last
    part = Value(y.name + suffix, y.type.with_shape(tuple(shape)))
    g._claim(part)
    part.producer, part.index = node, 0
    node.outputs[0] = part
    y.producer = None


def chip_graph(graph, chips: int, chip: int):
    """A copy of ``graph`` in which each split product multiplies by chip ``chip``'s
    slice of its weights: a gathered one writes ``NAME.part``, a row-split one (an
    attention's output projection, :mod:`.heads`, or a down projection)
    ``NAME.partial``, and NAME has no producer (the collective makes it)."""
    from .heads import split_heads

    g = graph.copy()
    g.meta = dict(graph.meta)
    skip = split_heads(g, chips, chip, lambda g, m: _rename_output(g, m, PARTIAL, None))
    rows = row_splits(g, chips, skip)
    readers = {m.name for _, m in rows.values()}
    for node in [n for n in split_products(g, chips, skip) if n.name not in readers]:
        cols = node.inputs[_weights(node)[0]].const.shape[1] // chips
        for i in _weights(node):
            w = node.inputs[i]
            node.set_input(i, g.add_constant(f"{w.name}.chip{chip}",
                                             w.const[:, chip * cols:(chip + 1) * cols]))
        if node.name in rows:  # the slice stays on the chip, for the row-split reader
            values, m = rows[node.name]
            for y in values:
                y.type = y.type.with_shape(tuple(y.type.shape[:-1]) + (cols,))
            w = m.inputs[1]
            m.set_input(1, g.add_constant(f"{w.name}.chip{chip}",
                                          w.const[chip * cols:(chip + 1) * cols]))
            _rename_output(g, m, PARTIAL, None)
        else:
            _rename_output(g, node, PART, cols)
    return g


def _ends(node) -> bool:
    y = node.outputs[0] if node.outputs else None
    return y is not None and (y.name.endswith(PART) or y.name.endswith(PARTIAL))


def segments(graph, chips: int) -> list[list[str]]:
    """Node names of each segment: the nodes up to and including each one whose output
    a collective joins."""
    g = chip_graph(graph, chips, 0)
    out, current = [], []
    for node in g.nodes:
        current.append(node.name)
        if _ends(node):
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def segment_graphs(graph, chips: int, chip: int) -> list:
    """The graphs of chip ``chip``'s segments, each with the part or partial sum a
    collective joins as an output when it ends with one."""
    g = chip_graph(graph, chips, chip)
    by_name = {n.name: n for n in g.nodes}
    parts = segments(graph, chips)
    last_read: dict[str, int] = {}  # value -> the last segment that reads it
    for s, names in enumerate(parts):
        for n in names:
            for v in by_name[n].inputs:
                if v is not None:
                    last_read[v.name] = s
    graphs = []
    for s, names in enumerate(parts):
        nodes = [by_name[n] for n in names]
        later = {v.name for n in nodes for v in by_name[n.name].outputs
                 if v is not None and last_read.get(v.name, -1) > s}
        if _ends(nodes[-1]):
            later.add(nodes[-1].outputs[0].name)
        graphs.append(stage_graph(g, nodes, s, later))
    return graphs

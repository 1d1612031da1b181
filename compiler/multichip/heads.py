"""Tensor parallelism for attention: every chip computes whole heads.

An ``npuc::Attention`` whose query, key and value each come from a ``MatMul`` by a 2-D
constant weight (the Q/K/V projections) through head-preserving nodes (reshapes,
transposes, rotary embeddings, the key/value repeat of grouped-query attention, the
rounding's ``Cast`` pairs), and whose output reaches a ``MatMul`` by a constant weight
(the output projection) through such nodes, is split by heads as in Megatron-LM: chip
``c`` multiplies by columns ``c*N/n : (c+1)*N/n`` of each projection's weight, computes the
attention of its heads, and multiplies its slice of the attention's output by the same
rows of the output projection's weight, a partial sum that the ``all_reduce`` of
:mod:`.tensor` adds. With grouped-query attention a chip gets whole key/value heads with
their query heads.

Which axis of each value holds the heads is followed node by node (a ``Reshape`` maps
contiguous slices of one axis to contiguous slices of another only when the dimensions
before them have the same product); the shape constants of ``Reshape`` and ``Expand``
become the chip's shapes. The block is refused, and gathered as before, when the heads do
not divide by the chip count or when anything in it does not keep the heads apart (the
decision log says why). A key/value cache output of a split block stays on its chips:
each holds its heads, joined along the head axis in chip order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAME = {"Cast", "Identity"}
CHAIN = SAME | {"Reshape", "Transpose", "Unsqueeze", "Expand", "Rotary"}


@dataclass
class Block:
    """One attention split by heads: its projections, its nodes and each value's head
    axis (counted from the end)."""

    attention: str
    projections: list = field(default_factory=list)   # Q, K, V MatMul names
    output: str = ""                                   # the output projection's name
    nodes: list = field(default_factory=list)          # between them, in graph order
    axes: dict = field(default_factory=dict)           # value name -> negative axis


def _projection(node) -> bool:
    return node is not None and node.domain == "" and node.op_type == "MatMul" and \
        len(node.inputs) == 2 and node.inputs[1].const is not None and \
        node.inputs[1].const.ndim == 2


def _back(v, nodes: list):
    """The projection ``v`` comes from through chain nodes (collected into ``nodes``)."""
    while True:
        node = v.producer
        if _projection(node):
            return node
        if node is None or node.op_type not in CHAIN:
            raise ValueError(f"{v.name} does not come from a projection by a weight "
                             f"through reshapes")
        nodes.append(node)
        v = node.inputs[0]


def _forward(v, graph, nodes: list):
    """The output projection that reads ``v`` through single-reader chain nodes."""
    while True:
        if len(v.uses) != 1 or v in graph.outputs:
            raise ValueError(f"{v.name} has other readers than the output projection")
        node, index = v.uses[0]
        if _projection(node) and index == 0:
            return node
        if node.op_type not in SAME | {"Reshape", "Transpose"} or index != 0:
            raise ValueError(f"{node.name} ({node.op_type}) lies between the attention "
                             f"and its output projection")
        nodes.append(node)
        v = node.outputs[0]


def _axis(node, a: int, chips: int) -> int:
    """The head axis (negative) of ``node``'s output when its first input's is ``a``."""
    x, y = node.inputs[0].type.shape, node.outputs[0].type.shape
    op = node.op_type
    if op in SAME or op in ("Rotary", "Attention", "Expand"):
        if op == "Expand" and x[a] != y[a]:
            raise ValueError(f"{node.name} broadcasts along the head axis")
        return a
    if op == "Transpose":
        perm = [p - len(x) for p in node.attrs["perm"]]
        return perm.index(a) - len(y)
    if op == "Unsqueeze":
        axes = node.inputs[1].const if len(node.inputs) > 1 else node.attrs["axes"]
        axes = {int(k) % len(y) for k in np.ravel(axes)}
        kept = [k for k in range(len(y)) if k not in axes]
        return kept[a] - len(y)
    before = int(np.prod(x[:a]))  # a Reshape: the same elements before the head axis
    for k in range(len(y)):
        if int(np.prod(y[:k])) == before and y[k] > 1 and y[k] % chips == 0:
            return k - len(y)
    raise ValueError(f"{node.name} reshapes the heads into another layout")


def _check_side(node, a: int, index: int) -> None:
    """A node's other inputs must be constants that do not vary along the head axis."""
    if node.op_type in ("Reshape", "Expand", "Unsqueeze") and index == 1:
        return  # shape operands: replaced by the chip's shapes
    v = node.inputs[index]
    if v is None:
        return
    if v.const is None:
        raise ValueError(f"{node.name} reads {v.name}, which is not split by heads")
    if len(v.const.shape) >= -a and v.const.shape[a] != 1:
        raise ValueError(f"{node.name} reads {v.name}, which varies along the heads")


def find_block(graph, attention, chips: int) -> Block:
    """The block of ``attention`` split over ``chips`` chips; ValueError says why not."""
    block = Block(attention.name)
    chain: list = []
    block.projections = [_back(attention.inputs[i], chain).name for i in range(3)]
    if len(set(block.projections)) != 3:
        raise ValueError("query, key and value come from one projection")
    heads = attention.inputs[0].type.shape[1]
    out = _forward(attention.outputs[0], graph, chain)
    block.output = out.name
    by_name = {n.name: n for n in graph.nodes}
    kv = by_name[block.projections[1]].inputs[1].const.shape[1] // \
        attention.inputs[0].type.shape[-1]
    if heads % chips or kv % chips or kv == 0:
        raise ValueError(f"{heads} query heads and {kv} key/value heads do not divide "
                         f"by {chips} chips")
    members = {n.name for n in chain} | {attention.name}
    block.nodes = [n for n in graph.nodes if n.name in members]
    for p in block.projections:
        block.axes[by_name[p].outputs[0].name] = -1
        if any(r.name not in members for r, _ in by_name[p].outputs[0].uses):
            raise ValueError(f"{p}'s output is read outside the attention")
    for node in block.nodes:
        a = block.axes.get(node.inputs[0].name)
        if a is None:
            raise ValueError(f"{node.name} reads {node.inputs[0].name} outside the block")
        count = 3 if node.op_type == "Attention" else 1
        if any(block.axes.get(node.inputs[i].name) != a for i in range(count)):
            raise ValueError(f"{node.name}'s inputs hold their heads on different axes")
        if count == 3 and a != -3:  # [batch, heads, sequence, head size]
            raise ValueError(f"{node.name} would be split along another axis than heads")
        for i in range(count, len(node.inputs)):
            _check_side(node, a, i)
        y = node.outputs[0]
        block.axes[y.name] = _axis(node, a, chips)
        if y.type.shape[block.axes[y.name]] % chips:
            raise ValueError(f"{y.name} does not split into {chips} equal slices")
        for reader, _ in y.uses:
            if reader.name not in members and reader.name != out.name:
                raise ValueError(f"{reader.name} reads {y.name} of the attention")
    if block.axes[out.inputs[0].name] != -1:
        raise ValueError(f"{out.name} does not read the heads along its rows")
    return block


def blocks(graph, chips: int) -> tuple[list[Block], list[dict]]:
    """The attention blocks split by heads, and a decision (split or why not) for each
    attention."""
    found, decisions = [], []
    for node in graph.nodes:
        if node.domain != "npuc" or node.op_type != "Attention" or len(node.inputs) < 3:
            continue
        try:
            found.append(find_block(graph, node, chips))
            decisions.append({"attention": node.name, "action": "split by heads",
                              "reason": f"each of {chips} chips computes 1/{chips} of "
                                        f"the heads; one all_reduce joins the output "
                                        f"projection's partial sums"})
        except ValueError as e:
            decisions.append({"attention": node.name, "action": "not split by heads",
                              "reason": f"{e}; its projections are gathered"})
    return found, decisions


def sharded_outputs(graph, chips: int) -> dict:
    """``{model output: axis}`` for the outputs each chip holds its heads of."""
    names = {v.name for v in graph.outputs}
    return {v: a for b in blocks(graph, chips)[0] for v, a in b.axes.items() if v in names}


def split_heads(g, chips: int, chip: int, rename) -> set:
    """Give chip ``chip``'s share of the heads to every block of ``g`` (in place); the
    names of the projections split. ``rename(g, node)`` makes the output projection's
    output its partial sum."""
    by_name = {n.name: n for n in g.nodes}
    done = set()
    for block in blocks(g, chips)[0]:
        for name in block.projections:
            node = by_name[name]
            w = node.inputs[1]
            cols = w.const.shape[1] // chips
            node.set_input(1, g.add_constant(f"{w.name}.chip{chip}",
                                             w.const[:, chip * cols:(chip + 1) * cols]))
        for node in [by_name[n] for n in block.projections] + block.nodes:
            y = node.outputs[0]
            a = block.axes[y.name]
            shape = list(y.type.shape)
            shape[a] //= chips
            y.type = y.type.with_shape(tuple(shape))
            if node.op_type in ("Reshape", "Expand"):
                node.set_input(1, g.add_constant(f"{node.name}.shape.chip{chip}",
                                                 np.array(shape, dtype=np.int64)))
        out = by_name[block.output]
        w = out.inputs[1]
        rows = w.const.shape[0] // chips
        out.set_input(1, g.add_constant(f"{w.name}.chip{chip}",
                                        w.const[chip * rows:(chip + 1) * rows]))
        rename(g, out)
        done |= set(block.projections) | {block.output}
    return done

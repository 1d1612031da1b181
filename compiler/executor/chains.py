"""Pairs of nodes the executor runs as one kernel in a float32-products run, the graph
unchanged: a 1x1 convolution whose only reader is a depthwise convolution
(:mod:`.kernels.conv_chain`; MobileNet's inverted residual).

Like the residual fusions of :mod:`.fusion`, only runs with float32 products and no
observer take them (calibration observes the expanded tensor the pair never makes).
"""

from __future__ import annotations

from dataclasses import dataclass

from npuc.ir.graph import Graph

from .fusion import _before, _only_reader

CONVS = (("", "Conv"), ("npuc", "FusedConv"))


@dataclass(frozen=True)
class Chain:
    """The node at ``first`` (a 1x1 convolution) and ``node``, the depthwise convolution
    at ``second`` that alone reads its output."""

    first: int
    second: int
    node: object
    reshaped = False  # (read as a residual fusion is: the interpreter takes both alike)

    @property
    def out(self):
        """The value the pair computes: the depthwise node's output."""
        return self.node.outputs[0]

    @property
    def skipped(self) -> tuple[int, ...]:
        return (self.second,)


def plan(graph: Graph, taken=()) -> dict[int, Chain]:
    """The chains of ``graph`` by the index of their first node; nodes at ``taken``
    (fused otherwise) are left out."""
    nodes = list(graph.nodes)
    position = {id(n): i for i, n in enumerate(nodes)}
    kept = {id(v) for v in graph.outputs}
    chains: dict[int, Chain] = {}
    for i, node in enumerate(nodes):
        if not _conv(node, 1) or i in taken:
            continue
        y = node.outputs[0]
        reader = _only_reader(y, ("Conv", "FusedConv"), kept, graph, domains=("", "npuc"))
        if reader is None or not _conv(reader, None) or reader.inputs[0] is not y:
            continue
        j = position[id(reader)]
        if j in taken or not all(_before(v, i, position) for v in reader.inputs[1:]
                                 if v is not None):
            continue
        chains[i] = Chain(i, j, reader)
    return chains


def _conv(node, kernel: int | None) -> bool:
    """A 2-D Conv or FusedConv with constant-shaped weights: 1x1 (``kernel`` 1) or
    depthwise (``kernel`` None: one input channel per group, several groups)."""
    if (node.domain, node.op_type) not in CONVS or len(node.inputs) < 2 or \
            any(o is None for o in node.outputs[:1]):
        return False
    w = node.inputs[1]
    shape = getattr(getattr(w, "type", None), "shape", None)
    if w is None or shape is None or len(shape) != 4 or not all(isinstance(d, int)
                                                                 for d in shape):
        return False
    if kernel == 1:
        return tuple(shape[2:]) == (1, 1)
    return shape[1] == 1 and node.attrs.get("group", 1) == shape[0] > 1


def run(chain: Chain, graph, first, args: list, rest: list) -> list | None:
    """``[the depthwise node's output]``, computed with the 1x1 node ``first`` on its
    ``args``; ``rest``: the depthwise node's inputs after the first. None: run apart."""
    from .kernels import conv_chain

    w1 = args[1]
    b1 = args[2] if len(args) > 2 else None
    w2, b2 = rest[0], rest[1] if len(rest) > 1 else None
    if args[0] is None or w1 is None or w2 is None:
        return None
    y = conv_chain.run(graph, first, chain.node, args[0], w1, b1, w2, b2)
    return None if y is None else [y]

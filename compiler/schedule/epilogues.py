"""Epilogues a chip cannot fuse run as their own NPU group, not with their Conv on the CPU.

The optimizer fuses an activation into the operator before it (``npuc::FusedConv`` with
``activation = "HardSigmoid"``) for every chip alike. A chip whose MAC unit cannot apply
that activation on the way out (RNGD fuses Relu, Clip, Sigmoid, HardSwish but not
HardSigmoid after a Conv) would refuse the whole fused node and send the Conv to the
CPU. :func:`split_unfusable` splits such a node back into the operator and its
activation, each then placed on its own: the Conv on the NPU, the activation as its own
group (on the NPU when the chip runs it, else on the CPU with that reason).
"""

from __future__ import annotations

from npuc.compiler.passes.pattern import Match
from npuc.compiler.quantize.unfuse import BASE, SplitFused
from npuc.ir.decisions import log_of


class SplitUnfusable(SplitFused):
    """A fused operator whose epilogue ``target`` cannot fuse, when the operator alone
    would run on its NPU, becomes the operator and its activation."""

    roots = tuple(BASE)

    def __init__(self, target):
        super().__init__()
        self.target = target

    def match(self, node):
        from npuc.targets.placement import op_key, place_node

        if node.domain != "npuc" or node.op_type not in BASE or \
                not node.attrs.get("activation"):
            return
        whole = place_node(node, self.target)
        if whole.on_npu or "fuse" not in whole.reason:
            return
        alone = _Bare(node)
        if not place_node(alone, self.target).on_npu:
            return
        log_of(node.graph).record(
            "fusion", node.name, "epilogue split",
            f"{whole.reason}: the {node.attrs['activation']} runs as its own group and the "
            f"{BASE[node.op_type]} stays on the NPU", op=op_key(node))
        yield Match(node, covered=[(node, True)])


class _Bare:
    """The view of a fused node without its epilogue that the placement rules read."""

    def __init__(self, node):
        self._node = node
        self.attrs = {k: v for k, v in node.attrs.items()
                      if k not in ("activation", "activation_params")}

    def __getattr__(self, name):
        return getattr(self._node, name)


def split_unfusable(graph, target) -> int:
    """Split the fused nodes whose epilogue ``target`` cannot fuse; the number split."""
    from npuc.compiler.passes.rewrite import apply_rules

    if target.kind == "cpu" or not any(n.domain == "npuc" and n.op_type in BASE and
                                        n.attrs.get("activation") for n in graph.nodes):
        return 0
    return apply_rules(graph, [SplitUnfusable(target)], "fusion")

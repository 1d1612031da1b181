"""The integer rewrite: float nodes become npuc quantized nodes where a rule applies.

Walking the nodes in order, each node whose rule (``npuc.compiler.quantize.rules``)
applies is replaced by its int8 form followed by a DequantizeLinear that gives the float
value back under the original name; a later quantized node reads the int8 value
directly, so between two quantized nodes no float tensor remains once the unused
DequantizeLinear nodes are removed at the end. A node whose input is float gets a
QuantizeLinear in front (shared by all its readers). Nodes that stay float (no rule, the
user's ``keep_float``, or a rule that refused) are left untouched, with a reason in the
decision log.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph, Node, Value
from npuc.ir.types import QuantParams, TensorType

from .scheme import Scheme


class Rewriter:
    """Shared state of one rewrite: parameters by value name and the int8 twins."""

    def __init__(self, graph: Graph, scheme: Scheme, act: dict[str, QuantParams],
                 stats=None, options=None):
        self.graph = graph
        self.scheme = scheme
        self.act = act
        self.stats = stats
        self.options = options or {}
        self.twin: dict[int, Value] = {}  # id(float value) -> its int8 value
        self.ours: set[int] = set()  # ids of the Q/DQ nodes this rewrite made
        self.float_of: dict[str, str] = {}  # int8 value name -> float value name observed

    # -- values ------------------------------------------------------------------------
    def const(self, hint: str, array, quant: QuantParams | None = None) -> Value:
        """A new constant; ``quant`` marks it as quantized data (weights, bias)."""
        array = np.asarray(array)
        t = None
        if quant is not None:
            from npuc.ir.dtypes import of_array

            t = TensorType(of_array(array), array.shape, quant)
        return self.graph.add_constant(hint, array, t)

    def node(self, op: str, inputs, out: Value | tuple, attrs: dict, before: Node,
             domain: str = "npuc", name: str = "") -> Node:
        """Create one of our nodes (removed again at the end if nobody reads it)."""
        n = self.graph.create_node(op, inputs, [out], attrs, domain=domain, name=name,
                                   before=before)
        self.ours.add(id(n))
        return n

    def available(self, v: Value | None) -> Value | None:
        """The int8 twin of ``v`` when one exists already (no new QuantizeLinear)."""
        return None if v is None else self.twin.get(id(v))

    def quantized(self, v: Value, before: Node) -> Value | None:
        """The int8 twin of ``v``, inserting a QuantizeLinear when there is none."""
        if id(v) in self.twin:
            return self.twin[id(v)]
        q = self.act.get(v.name)
        if q is None or v.const is not None:
            return None
        anchor = v.producer
        where = {"after": anchor} if anchor is not None and anchor.graph is self.graph \
            else {"before": self.graph.first}
        node = self.graph.create_node(
            "QuantizeLinear", [v, self.const(f"{v.name}_scale", q.scale),
                               self.const(f"{v.name}_zero_point", q.zero_point)],
            [(f"{v.name}_q", _i8(v, q))], name=f"{v.name}_quantize", **where)
        self.ours.add(id(node))
        out = node.outputs[0]
        self.twin[id(v)] = out
        self.float_of[out.name] = v.name
        return out

    def replace(self, old: Node, new_q: Value, replaced: Value, extra: list[Node] = ()) -> None:
        """``new_q`` (int8) now computes ``replaced``: dequantize it under the same name,
        and remove ``old`` (and the absorbed ``extra`` nodes after it)."""
        self.replace_outputs(old, [new_q], [replaced], extra)

    def replace_outputs(self, old: Node, new_qs, replaced, extra: list[Node] = ()) -> None:
        """Each int8 value of ``new_qs`` computes the float value at the same position of
        ``replaced`` (the outputs of a Split): each one read is dequantized under its
        name, one nobody reads stays int8; ``old`` and ``extra`` are removed."""
        g = self.graph
        made = []
        for new_q, value in zip(new_qs, replaced):
            if value is None or not (value.uses or value in g.outputs):
                continue
            q = new_q.type.quant
            name = value.name
            dq = g.create_node("DequantizeLinear",
                               [new_q, self.const(f"{name}_scale", q.scale),
                                self.const(f"{name}_zero_point", q.zero_point)],
                               [(f"{name}_dq", value.type)], name=f"{name}_dequantize",
                               after=new_q.producer)
            self.ours.add(id(dq))
            value.replace_all_uses_with(dq.outputs[0])
            made.append((dq.outputs[0], new_q, name))
        for n in reversed([old, *extra]):
            n.drop_inputs()
            g.remove_node(n)
        for out, new_q, name in made:
            g.rename(out, name)
            self.twin[id(out)] = new_q
            self.float_of[new_q.name] = name

    # -- records -----------------------------------------------------------------------
    def record(self, node: Node, action: str, reason: str, **data) -> None:
        log_of(self.graph).record("quantize", node.name or node.outputs[0].name, action,
                                  reason, **data)

    # -- the walk ----------------------------------------------------------------------
    def run(self, keep_float=()) -> Graph:
        from .rules import RULES

        keep = keep_reasons(keep_float)
        for node in list(self.graph.nodes):
            if node.graph is None:  # absorbed by an earlier rule
                continue
            if node.name in keep:
                why = self.options.get("keep_reason", {}).get(node.name)
                self.record(node, "kept float", why or keep[node.name])
                continue
            key = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
            rule = RULES.get(key)
            if rule is None:
                continue
            reason = rule(self, node)
            if reason:  # a rule returns why it did not apply
                self.record(node, "kept float", reason)
        self.cleanup()
        return self.graph

    def cleanup(self) -> None:
        """Remove our Q/DQ nodes nobody reads, and constants left without readers."""
        g = self.graph
        changed = True
        while changed:
            changed = False
            for node in list(g.nodes):
                if id(node) in self.ours and not any(
                        o.uses or o in g.outputs for o in node.outputs if o is not None):
                    g.remove_node(node)
                    changed = True
        for v in list(g.constants.values()):
            if not v.uses and v not in g.outputs:
                g.remove_constant(v)


def _i8(v: Value, q: QuantParams) -> TensorType:
    shape = v.type.shape if isinstance(v.type, TensorType) else None
    return TensorType("i8", shape, q)


def keep_reasons(keep_float) -> dict[str, str]:
    """``{node name: why it stays float}`` from a list of names (the user's) or a dict."""
    if isinstance(keep_float, dict):
        return dict(keep_float)
    return {name: "the user asked to keep this node in float" for name in keep_float}

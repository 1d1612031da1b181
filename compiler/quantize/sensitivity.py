"""Per-layer sensitivity for the accuracy recovery: each Conv/Gemm/MatMul quantized alone
(the rest float32), the model's outputs judged against the float model's.

With one layer quantized, everything upstream of it computes exactly what the float
model computes. So the float activations are computed once per sample, and each layer's
candidate runs only the part of the graph its change reaches: the nodes that differ from
the float graph and everything after them, fed the cached float values at the cut. The
outputs are the ones a full run gives, bit for bit (the same kernels on the same
arrays), at the cost of the downstream part only: a layer near the output costs almost
nothing. A parallel fan-out measures parts of the layer list on its workers.
"""

from __future__ import annotations

from npuc.ir.graph import Graph

from .plan import Builder, Plan


def _key(node) -> tuple:
    return (node.op_type, node.domain, tuple(v.name if v is not None else "" for v in
                                             node.inputs),
            tuple(v.name if v is not None else "" for v in node.outputs))


def float_keys(graph: Graph) -> set:
    """What identifies an unchanged node: operator, input and output names."""
    return {_key(n) for n in graph.nodes}


def _has_subgraphs(graph: Graph) -> bool:
    return any(isinstance(a, Graph) or (isinstance(a, list) and a and
                                        isinstance(a[0], Graph))
               for n in graph.nodes for a in n.attrs.values())


def cut(graph: Graph, keys: set) -> dict[str, str] | None:
    """Cut ``graph`` (modified in place) to the part that differs from the float graph
    whose node keys are ``keys``: the unchanged nodes before it are removed and the
    values it reads from them become inputs. Returns ``{input name: float value name}``
    for the inputs to feed from the float run; None (graph untouched) when the graph has
    control flow, whose bodies may read any value."""
    if _has_subgraphs(graph):
        return None
    inputs = {id(v) for v in graph.inputs}
    same, made = set(), set()
    for n in graph.nodes:
        if _key(n) in keys and all(v is None or v.const is not None or id(v) in made or
                                   id(v) in inputs for v in n.inputs):
            same.add(id(n))
            made.update(id(o) for o in n.outputs if o is not None)
    frontier = []
    for n in graph.nodes:
        if id(n) not in same:
            frontier += [v for v in n.inputs if v is not None and id(v) in made and
                         v not in frontier]
    frontier += [v for v in graph.outputs if id(v) in made and v not in frontier]
    fed = {}
    for v in frontier:
        name = graph.fresh_name(f"{v.name}@float")
        graph.release_name(name)  # reserved by fresh_name; add_input claims it
        new = graph.add_input(name, v.type)
        fed[new.name] = v.name
        for user, i in list(v.uses):
            if id(user) not in same:
                user.set_input(i, new)
        graph.outputs[:] = [new if o is v else o for o in graph.outputs]
    for n in reversed(list(graph.nodes)):
        if id(n) in same:
            graph.remove_node(n)
    return fed


class FloatCache:
    """The float graph's values on the ranking samples, kept for the names asked."""

    def __init__(self, float_graph: Graph, samples: list, names: set[str]):
        from npuc.compiler.executor.interpreter import execute

        self.values = []
        for s in samples:
            kept = {k: v for k, v in s.items() if k in names}

            def observe(node, results, kept=kept):
                for v, r in zip(node.outputs, results):
                    if v is not None and v.name in names:
                        kept[v.name] = r

            execute(float_graph, s, observe=observe)
            self.values.append(kept)


def _candidate(builder: Builder, base: Plan, layers: list[str], name: str) -> Graph:
    plan = base.copy()
    plan.layers.update({n: "fp32" for n in layers if n != name and n not in base.layers})
    return builder.build(plan)


def measure_part(job, part: list[str]) -> list[tuple]:
    """The scores of the layers ``part``, each quantized alone: the candidates are cut
    to what their change reaches and run on the cached float values."""
    from npuc.compiler.executor.interpreter import execute

    builder, ev, base, layers = job
    keys = float_keys(builder.float_graph)
    cuts = []
    for name in part:
        g = _candidate(builder, base, layers, name)
        cuts.append((g, cut(g, keys)))
    cache = FloatCache(builder.float_graph, ev.samples,
                       {n for _, fed in cuts if fed for n in fed.values()})
    scores = []
    for g, fed in cuts:
        if fed is None:
            scores.append(ev.score(ev.measure(g)))
            continue
        outs = []
        for s, vals in zip(ev.samples, cache.values):
            feeds = {v.name: (vals[fed[v.name]] if v.name in fed else s[v.name])
                     for v in g.inputs}
            # an output the candidate leaves unchanged is fed from the cache under its
            # float name: give it back the model's output name
            outs.append({fed.get(k, k): r for k, r in execute(g, feeds).items()})
        scores.append(ev.score(ev.judge(outs)))
    return scores

"""Float-to-float rewrites before calibration, so that what is observed is what runs.

- Conv followed by BatchNormalization (the Conv output read by nothing else) becomes one
  Conv: with ``k = gamma / sqrt(var + eps)``, ``W' = W * k`` per output channel and
  ``B' = (B - mean) * k + beta``. Quantizing the folded weights is what the chip does
  (its SDK folds BN into the Conv before quantizing), and the BN output is never rounded
  on its own.

If ``npuc.optimize`` already folded BN, there is nothing left to do here.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph
from npuc.ir.schema import attr_or_default


def _const(v):
    return None if v is None else v.const


def fold_batchnorm(graph: Graph) -> int:
    """Fold every BatchNormalization that follows a Conv with constant weights."""
    folded = 0
    for bn in list(graph.nodes):
        if bn.op_type != "BatchNormalization" or bn.domain or len(bn.outputs) > 1:
            continue
        conv = bn.inputs[0].producer
        if conv is None or conv.op_type != "Conv" or conv.domain:
            continue
        y = conv.outputs[0]
        if len(y.uses) != 1 or y in graph.outputs:
            continue
        w = _const(conv.input(1))
        b = _const(conv.input(2)) if conv.input(2) is not None else None
        params = [_const(bn.input(i)) for i in range(1, 5)]
        if w is None or any(p is None for p in params) or \
                (conv.input(2) is not None and b is None):
            continue
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        eps = float(attr_or_default(bn, "epsilon") or 1e-5)
        k = gamma / np.sqrt(var + eps)
        w2 = (w.astype(np.float64) * k.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        b0 = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
        b2 = ((b0 - mean) * k + beta).astype(w.dtype)
        wv = graph.add_constant(f"{conv.input(1).name}_bnfold", w2)
        bv = graph.add_constant(f"{conv.name or y.name}_bias_bnfold", b2)
        conv.set_input(1, wv)
        if conv.input(2) is None:
            conv.add_input(bv) if len(conv.inputs) == 2 else conv.set_input(2, bv)
        else:
            conv.set_input(2, bv)
        out = bn.outputs[0]
        bn.drop_inputs()
        out.replace_all_uses_with(y)
        graph.remove_node(bn)
        log_of(graph).record("quantize", conv.name or y.name, "folded batchnorm",
                             "BatchNormalization after a Conv is folded into its weights "
                             "before quantization, as the chip runs them")
        folded += 1
    _drop_unused_constants(graph)
    return folded


def _drop_unused_constants(graph: Graph) -> None:
    for v in list(graph.constants.values()):
        if not v.uses and v not in graph.outputs:
            graph.remove_constant(v)


def prepare(graph: Graph) -> Graph:
    """A copy of ``graph`` ready for calibration (BatchNormalization folded). The copy
    has its own decision log (starting with the graph's), so what one quantization
    records (hazards, recovery steps) never reaches the user's graph or the next
    quantization of it."""
    from npuc.ir.decisions import DecisionLog

    g = graph.copy()
    own = DecisionLog()
    own.entries = list(log_of(graph).entries)
    g.meta["decisions"] = own
    fold_batchnorm(g)
    return g

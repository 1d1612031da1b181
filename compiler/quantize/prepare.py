"""Float-to-float rewrites before calibration, so that what is observed is what runs.

BatchNormalization after a Conv or Gemm is folded into its weights by the optimizer's
``fuse-conv-bn`` pass (:mod:`npuc.compiler.passes.fuse_bn`, where the algebra is): the chip's
SDK folds BN before quantizing, so the folded weights are what gets quantized and the BN
output is never rounded on its own. If ``npuc.optimize`` already folded BN, there is
nothing left to do here.
"""

from __future__ import annotations

from npuc.compiler.passes.fuse_bn import FuseConvBatchNorm
from npuc.ir.graph import Graph


def fold_batchnorm(graph: Graph) -> bool:
    """Fold every BatchNormalization that follows a Conv or Gemm with constant weights;
    whether any was (each fold, and each refusal's reason, is in the decision log)."""
    folded = FuseConvBatchNorm().run(graph)
    for v in list(graph.constants.values()):
        if not v.uses and v not in graph.outputs:
            graph.remove_constant(v)
    return folded


def prepare(graph: Graph) -> Graph:
    """A copy of ``graph`` ready for calibration (BatchNormalization folded). The copy
    has its own decision log (starting with the graph's), so what one quantization
    records (hazards, recovery steps) never reaches the user's graph or the next
    quantization of it."""
    from npuc.ir.decisions import DecisionLog, log_of

    g = graph.copy()
    own = DecisionLog()
    own.entries = list(log_of(graph).entries)
    g.meta["decisions"] = own
    fold_batchnorm(g)
    return g

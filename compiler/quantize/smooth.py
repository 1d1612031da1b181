"""SmoothQuant: move activation outliers into the weights of transformer MatMuls.

For ``Y = X W`` with a few large columns of ``X`` (typical after LayerNorm), per-tensor
int8 spends its levels on those columns. With ``s_j = max|X_j|**a / max|W_j|**(1-a)``,
``Y = (X / s) (s W)``: the rows of ``W`` are scaled (per-channel weight quantization
absorbs that) and ``X / s`` has flatter columns. The division is a float Mul in front of
the quantization of ``X`` (the chip folds it into the producer's affine parameters or its
quantize step). MatMuls that read the same ``X`` share one ``s``, computed from the
largest of their weights. The ranges of ``X / s`` follow from the per-column maxima that
calibration kept, so no second calibration pass is needed.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph

from .calibrate import Stats

MIN_OUTLIER_RATIO = 2.0  # max/median of the column maxima below which nothing is done


def smooth_matmuls(g: Graph, stats: Stats, ranges: dict, alpha: float = 0.5) -> int:
    """Apply SmoothQuant to the MatMuls with constant 2-D weights (in place)."""
    groups: dict[str, list] = {}
    for node in g.nodes:
        if node.op_type == "MatMul" and not node.domain and node.input(1).const is not None \
                and node.input(1).const.ndim == 2 and node.inputs[0].name in stats.column_absmax:
            groups.setdefault(node.inputs[0].name, []).append(node)
    done = 0
    for name, nodes in groups.items():
        xmax = stats.column_absmax[name].astype(np.float64)
        if xmax.max() <= 0 or xmax.max() / max(np.median(xmax), 1e-12) < MIN_OUTLIER_RATIO:
            continue
        wmax = np.max([np.abs(n.input(1).const).max(axis=1) for n in nodes], axis=0)
        s = np.power(np.maximum(xmax, 1e-5), alpha) / np.power(np.maximum(wmax, 1e-5), 1 - alpha)
        s = np.clip(s, 1e-4, 1e4)
        x = nodes[0].inputs[0]
        inv = g.add_constant(f"{name}_smooth", (1.0 / s).astype(np.float32))
        mul = g.create_node("Mul", [x, inv], [(f"{name}_smoothed", x.type)],
                            name=f"{name}_smooth", before=nodes[0])
        xs = mul.outputs[0]
        for n in nodes:
            w = n.input(1)
            n.set_input(1, g.add_constant(f"{w.name}_smooth", (w.const * s[:, None]).astype(
                w.const.dtype)))
            n.set_input(0, xs)
            log_of(g).record("quantize", n.name, "smoothquant",
                             f"input columns scaled down by up to {s.max():.1f}x (alpha "
                             f"{alpha}) and the weights' rows up, to flatten outliers")
        amax = float((xmax / s).max())
        lo = 0.0 if ranges.get(name, (-1.0, 0))[0] >= 0 else -amax
        ranges[xs.name] = (lo, amax)
        done += 1
    for v in list(g.constants.values()):
        if not v.uses and v not in g.outputs:
            g.remove_constant(v)
    return done


ALPHAS = (0.3, 0.5, 0.7, 0.85)


def search_alpha(g: Graph, stats: Stats, ranges: dict, scheme, samples, options,
                 method: str) -> float:
    """The alpha of :data:`ALPHAS` whose quantized model's outputs are closest to the
    float model's on the calibration samples (highest lowest-output SQNR)."""
    from .evaluator import Evaluator
    from .plan import Builder

    ev = Evaluator(g, samples[:16], None)
    best, best_db = ALPHAS[1], -np.inf
    tried = []
    for alpha in ALPHAS:
        trial, trial_ranges = g.copy(), dict(ranges)
        if smooth_matmuls(trial, stats, trial_ranges, alpha) == 0:
            return ALPHAS[1]  # no MatMul with outlier columns: alpha does not matter
        q = Builder(trial, scheme, stats, trial_ranges, samples, options, method).build()
        db = ev.measure(q).min_sqnr_db
        tried.append(f"{alpha}: {db:.1f} dB")
        if db > best_db:
            best, best_db = alpha, db
    log_of(g).record("quantize", g.name, f"smoothquant alpha {best}",
                     "searched on the calibration data (lowest output SQNR per alpha: "
                     f"{', '.join(tried)})")
    return best

"""Accuracy recovery: move the layers that cost the answer to a better scheme, cheapest
first, until the user's requirement (:mod:`.requirement`) holds.

1. **Measure** the quantized model against the float model on the calibration samples
   (:func:`npuc.compiler.accuracy.agreement`). Met: nothing to do.
2. **Sensitivity**: each Conv/Gemm/MatMul quantized alone, the rest in float32; the
   layers whose lone quantization hurts the output most come first.
3. **Escalate** through the ladder, in order of estimated latency cost: a better
   observer for the activations of the most sensitive layers (MinMax, Percentile,
   Entropy, MSE, chosen per tensor by the output error on the ranking samples, then
   judged on all of them; no latency cost), then each wider
   format the chip has (fp8, fp16, bf16, weight-only W8A16), then float32 (the host CPU
   where the chip has none). On each rung the fewest of the most sensitive layers that
   meet the requirement move (found by doubling, then bisection: a few measures per
   rung, not one per layer); when none does, the count closest to it is kept if it helps.

The requirement is judged with headroom (:mod:`.evaluator`: decided positions at half
verify's margin) while the chip's own formats can buy it; before layers move to the host
CPU, and on a chip with no wider format at all, with verify's margin.

Each kept step is logged with its reason, its latency cost (``2 * MACs / peak`` of the
new format minus that of the old) and the accuracy reached: the points of the report's
accuracy/latency curve. Numeric hazards (:mod:`.hazards`) are fixed before anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.compiler.accuracy import MARGIN
from npuc.ir.decisions import log_of

from .evaluator import Evaluator
from .layers import layer_op
from .plan import Builder, Plan, half_precision

OBSERVERS = ("minmax", "percentile", "entropy", "mse")
TOP_OBSERVED = 2       # layers whose activations try every observer
RANKING_ROWS = 8       # samples the sensitivity ranking is measured on


@dataclass
class Step:
    """One kept (or refused) step of the recovery."""

    subject: str
    action: str
    reason: str
    latency_s: float
    total_latency_s: float
    changed_share: float
    sqnr_db: float
    kept: bool = True


def layer_macs(node) -> int:
    """Multiply-accumulates of a Conv/Gemm/MatMul from its static shapes (symbolic
    dimensions count 1); 0 when unknown."""
    def size(v):
        shape = getattr(getattr(v, "type", None), "shape", None)
        if shape is None:
            return None
        return int(np.prod([d if isinstance(d, int) else 1 for d in shape]))

    out = size(node.outputs[0])
    w = node.input(1)
    wshape = getattr(getattr(w, "type", None), "shape", None) if w is not None else None
    if out is None or wshape is None:
        return 0
    wshape = [d if isinstance(d, int) else 1 for d in wshape]
    if layer_op(node) == "Conv":
        k = int(np.prod(wshape[1:]))
    elif layer_op(node) == "Gemm":
        k = wshape[1] if node.attrs.get("transB", 0) else wshape[0]
    else:
        k = wshape[-2] if len(wshape) >= 2 else wshape[0]
    return out * k


class Costs:
    """Estimated seconds of a layer in a format: ``2 * MACs / peak``."""

    def __init__(self, scheme):
        from npuc.targets import get_target

        try:
            self.target = get_target(scheme.target)
        except Exception:  # a scheme without a target file: no estimates
            self.target = None
        self.cpu = get_target("cpu")
        self.half = half_precision(scheme)

    def peak(self, fmt: str) -> float | None:
        base = {"fp8-tensor": "fp8", "w8a16": self.half, "w4a16": self.half}.get(fmt, fmt)
        if base and base.startswith("w4a16"):
            base = self.half
        peak = self.target.peak_ops(base) if self.target is not None and base else None
        if peak is None and fmt == "fp32":
            return self.cpu.peak_ops("fp32")
        return peak

    def on_host(self, fmt: str) -> bool:
        """Whether layers in ``fmt`` run on the host CPU: float32 on a chip without it
        (the ladder's other formats are the chip's own)."""
        return fmt == "fp32" and (self.target is None or self.target.peak_ops(fmt) is None)

    def seconds(self, node, fmt: str) -> float:
        peak = self.peak(fmt)
        return 2.0 * layer_macs(node) / peak if peak else 0.0


def ladder(scheme) -> list[str]:
    """The wider formats a layer can move to on this chip, cheapest first."""
    costs = Costs(scheme)
    wider = [p for p in ("fp8", "fp16", "bf16") if p in scheme.dtypes and p != scheme.precision]
    if scheme.precision == "int8" and costs.half:
        wider.append("w8a16")
    wider.sort(key=lambda p: -(costs.peak(p) or 0.0))
    return wider + ["fp32"]


def sensitivity(builder: Builder, ev: Evaluator, layers: list[str], base: Plan,
                fanout=None) -> list:
    """``[(layer, score)]``, the layer whose lone quantization hurts most first, measured
    on ``ev``'s samples (the first :data:`RANKING_ROWS`: a ranking needs fewer than a
    verdict).
    With a parallel ``fanout`` the layers are measured by its workers; each score is
    computed the same way wherever it runs, so the ranking is the same."""
    from .sensitivity import measure_part

    job = (builder, ev, base, layers)
    if fanout is not None and fanout.parallel and len(layers) > 1:
        from npuc.compiler.parallel import fan_out, share, split_range

        parts = [layers[a:b] for a, b in split_range(len(layers),
                                                      fanout.items_for(len(layers)))]
        shared = share(job, fanout)
        scores = [s for part in fan_out(measure_part, parts, fanout, shared=shared,
                                        desc="sensitivity") for s in part]
    else:
        scores = measure_part(job, layers)
    rows = list(zip(layers, scores))
    rows.sort(key=lambda r: (-r[1][0], -r[1][1]))
    return rows


def recover(builder: Builder, plan: Plan, requirement, samples, progress=False,
            fanout=None):
    """``(graph, plan, steps, agreement)``: the cheapest plan found that meets
    ``requirement`` (or the closest to it), the steps tried and the agreement reached.
    With a parallel ``fanout`` each measure's samples, and the sensitivity's layers, are
    run by its workers; the choices are those of one process."""
    ev = Evaluator(builder.float_graph, samples, requirement).bind(builder, fanout)
    costs = Costs(builder.scheme)
    if all(costs.on_host(rung) for rung in ladder(builder.scheme)):
        ev = ev.with_margin(MARGIN)  # no format of the chip to buy headroom with
    agree = ev.measure_plan(plan)
    state = _State(plan, agree, ev.score(agree))
    steps = [Step(builder.float_graph.name, "baseline",
                  f"{builder.scheme.precision} with the scheme's defaults", 0.0, 0.0,
                  agree.changed_share, agree.min_sqnr_db)]
    if state.score[0] != 0.0:
        _search(builder, ev, state, steps, requirement, fanout)
    return builder.build(state.plan), state.plan, steps, state.agree


def _search(builder, ev, state, steps, requirement, fanout) -> None:
    plan = state.plan
    layers = [n.name for n in builder.float_graph.nodes
              if layer_op(n) and n.name not in plan.layers]
    rank = ev.head(RANKING_ROWS)  # a ranking needs fewer samples than a verdict
    order = [name for name, _ in sensitivity(builder, rank, layers, plan, fanout)]
    nodes = {n.name: n for n in builder.float_graph.nodes}
    if builder.scheme.precision in ("int8", "fp8"):
        for name in order[:TOP_OBSERVED]:
            cand, why = _best_observers(builder, rank, state.plan, nodes[name], fanout)
            if cand is not None and _try(ev, state, cand, steps, name, "observer", why, 0.0):
                return
    costs = Costs(builder.scheme)
    for rung in ladder(builder.scheme):
        if rung == "fp32" and costs.on_host("fp32") and ev.margin < MARGIN:
            ev = ev.with_margin(MARGIN)
            if _relax(ev, state, steps):
                return
        movable = [n for n in order if _movable(rung, n, nodes, state.plan, builder.scheme)]
        if movable and _fewest(builder, ev, state, movable, rung, costs, nodes, steps,
                               requirement):
            return


def _relax(ev, state, steps) -> bool:
    """Judge the plan reached with verify's margin: the host CPU is paid for the
    requirement, not for the headroom of the stricter judge. True when met."""
    a = ev.measure_plan(state.plan)
    state.agree, state.score = a, ev.score(a)
    steps.append(Step("margin", "judge", f"the chip's formats give no more headroom: "
                      f"decided positions judged with verify's margin ({MARGIN:g}) before "
                      f"layers move to the host CPU", 0.0, state.total, a.changed_share,
                      a.min_sqnr_db))
    return state.score[0] == 0.0


@dataclass
class _State:
    plan: Plan
    agree: object
    score: tuple
    total: float = 0.0


def _movable(rung, name, nodes, plan, scheme) -> bool:
    fmt = plan.layers.get(name, scheme.precision)
    if fmt == "fp32" or not _wider(rung, fmt, scheme):
        return False
    return not (rung.startswith("w") and layer_op(nodes[name]) == "Conv")


def _try(ev, state, cand, steps, subject, action, why, cost) -> bool:
    """Measure ``cand``; keep it when it is closer to the requirement. True when met."""
    a = ev.measure_plan(cand)
    s = ev.score(a)
    kept = s < state.score
    if kept:
        state.plan, state.agree, state.score = cand, a, s
        state.total += cost
    steps.append(Step(subject, action, why, cost, state.total, a.changed_share,
                      a.min_sqnr_db, kept))
    return state.score[0] == 0.0


def _fewest(builder, ev, state, movable, rung, costs, nodes, steps, requirement) -> bool:
    """Move the fewest of the most sensitive layers to ``rung`` that meets the
    requirement. All of them are measured first: when that does not help, the rung is
    skipped after that one measure; when it meets the requirement, the most sensitive
    layer alone, then a bisection between 1 and all (about log2 of the layers in
    measures). When it helps but falls short, the first 1, 2, 4, ... of them are tried
    and the count closest to the requirement kept. True when the requirement is met."""
    def plan_for(k):
        cand = state.plan.copy()
        for name in movable[:k]:
            cand.layers[name] = rung
            cand.reasons[name] = f"accuracy recovery: {rung} for the requirement " \
                                 f"{requirement}"
        cost = sum(costs.seconds(nodes[n], rung) -
                   costs.seconds(nodes[n], state.plan.layers.get(n, builder.scheme.precision))
                   for n in movable[:k])
        return cand, cost

    tried = {}

    def measure(k):
        if k not in tried:
            cand, cost = plan_for(k)
            a = ev.measure_plan(cand)
            tried[k] = (ev.score(a), cand, a, cost)
        return tried[k]

    n, low, whole = len(movable), 0, measure(len(movable))[0]
    if whole >= state.score:  # not even every layer on this rung helps: skip it
        k = n
    elif whole[0] == 0.0:  # every layer meets it: the fewest by bisection from 1
        k = 1 if measure(1)[0][0] == 0.0 else n
        low = 0 if k == 1 else 1
    else:  # it helps but falls short: the closest of 1, 2, 4, ... layers
        k = 1
        while measure(k)[0][0] != 0.0 and k < n:
            low, k = k, min(2 * k, n)
    high = k if measure(k)[0][0] == 0.0 else None
    while high is not None and high - low > 1:
        mid = (low + high) // 2
        if measure(mid)[0][0] == 0.0:
            high = mid
        else:
            low = mid
    best = high if high is not None else min(tried, key=lambda c: (tried[c][0], c))
    for k in sorted(tried):
        score, cand, a, cost = tried[k]
        kept = k == best and score < state.score
        if kept:
            state.plan, state.agree, state.score = cand, a, score
            state.total += cost
        names = movable[:k]
        subject = ", ".join(names[:3]) + (f" and {k - 3} more" if k > 3 else "")
        steps.append(Step(subject, rung,
                          f"the {k} layer(s) whose int8 error hurts the answer most "
                          f"({', '.join(names)})", cost, state.total if kept else
                          state.total + cost, a.changed_share, a.min_sqnr_db, kept))
    return state.score[0] == 0.0


def _wider(rung: str, fmt: str, scheme) -> bool:
    order = ["int8", "fp8", "w8a16", "fp16", "bf16", "fp32"]
    f = "fp8" if fmt == "fp8-tensor" else ("w8a16" if fmt.startswith("w") else fmt)
    return order.index(rung) > order.index(f) if f in order else False


def _best_observers(builder, ev, plan, node, fanout):
    """A plan whose activations of ``node`` use the observers that give the least output
    error on ``ev``'s samples (the ranking rows: the full verdict is one measure after),
    or None when no observer does better than the current one."""
    tensors = [v.name for v in list(node.inputs) + list(node.outputs)
               if v is not None and v.const is None]
    for v in node.outputs:
        for user, _ in v.uses:
            if user.op_type in ("Relu", "Clip", "Add") and not user.domain:
                tensors.append(user.outputs[0].name)
    best, chosen = plan, []
    best_score = ev.score(ev.measure_plan(plan))
    for t in tensors:
        pick = None
        for method in OBSERVERS:
            if method == best.methods.get(t, builder.method):
                continue
            r = builder.ranges_for(method, fanout).get(t)
            if r is None or _close(r, builder.range_of(best, t)):
                continue  # no range, or one that gives (nearly) the same scale
            cand = best.copy()
            cand.methods[t] = method
            s = ev.score(ev.measure_plan(cand))
            if s < best_score:
                pick, best_score = cand, s
        if pick is not None:
            best = pick
            chosen.append(f"{t}: {best.methods[t]}")
    if not chosen:
        return None, ""
    return best, "observer chosen by the output error: " + ", ".join(chosen)


def _close(a, b, rel: float = 0.02) -> bool:
    """Two ranges whose ends differ by at most ``rel`` of the wider one's span."""
    if b is None:
        return False
    span = max(a[1] - a[0], b[1] - b[0], 1e-30)
    return abs(a[0] - b[0]) <= rel * span and abs(a[1] - b[1]) <= rel * span


def record_steps(graph, steps: list[Step], requirement, agree) -> None:
    """Write the recovery into ``graph``'s decision log (stage ``accuracy``)."""
    log = log_of(graph)
    for st in steps:
        verb = st.action if st.kept else f"{st.action} (not kept)"
        log.record("accuracy", st.subject, verb,
                   f"{st.reason}; estimated latency cost {st.latency_s * 1e6:+.3f} us; then "
                   f"{st.changed_share:.1%} of samples change their answer, lowest output "
                   f"SQNR {st.sqnr_db:.1f} dB",
                   latency_cost_s=st.latency_s, total_latency_cost_s=st.total_latency_s,
                   changed_share=st.changed_share, sqnr_db=st.sqnr_db, kept=st.kept)
    met = requirement.met(agree) if requirement is not None else True
    log.record("accuracy", graph.name, "met" if met else "not met",
               f"requirement {requirement}: {agree.summary()}",
               changed_share=agree.changed_share, sqnr_db=agree.min_sqnr_db,
               total_latency_cost_s=sum(s.latency_s for s in steps if s.kept))

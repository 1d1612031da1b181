"""A quantization plan and the builder that turns it into a quantized graph.

A :class:`Plan` says, on top of the scheme's defaults, which observer gives each
activation's range (``methods``) and which scheme each layer computes in (``layers``,
node name -> scheme): mixed precision per layer. The schemes a layer can take:

``int8``, ``fp8``           the calibrated formats (fp8 weights per channel)
``fp8-tensor``              fp8 with one weight scale for the whole tensor
``bf16``, ``fp16``          the 16-bit float formats (no calibration)
``w8a16``, ``w4a16[-gN]``   weight-only: int8/int4 weights, 16-bit float activations
``fp32``                    float32 (the host CPU where the chip has no float32)

:class:`Builder` holds what one quantization computed once (the prepared float graph,
the calibration statistics and ranges) and builds a graph for any plan, so the accuracy
recovery can try plans without calibrating again. Ranges of another observer are
computed on first use, by one more calibration pass, and kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from npuc.ir.decisions import DecisionLog, log_of
from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph

from .params import activation_params
from .rewrite import Rewriter

FLOATS = ("fp8", "fp8-tensor", "bf16", "fp16")
LAYER_SCHEMES = ("int8", *FLOATS, "w8a16", "w4a16", "fp32")


@dataclass
class Plan:
    """Observer per activation and scheme per layer, beyond the defaults."""

    methods: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)
    reasons: dict = field(default_factory=dict)  # node -> why it has its scheme

    def copy(self) -> "Plan":
        return Plan(dict(self.methods), dict(self.layers), dict(self.reasons))


def half_precision(scheme) -> str | None:
    """The chip's 16-bit float format (bf16 preferred), or None."""
    for p in ("bf16", "fp16"):
        if p in scheme.dtypes:
            return p
    return None


def check_layer_scheme(scheme, node: str, spec: str) -> None:
    """Refuse a layer scheme the chip cannot compute, naming the node."""
    from .weightonly import parse_weight_only

    wo = parse_weight_only(spec)
    if wo is not None:
        need = "int4" if wo[0] == 4 else "int8"
        if need not in scheme.dtypes or half_precision(scheme) is None:
            raise NpucError(f"{node}: {spec} needs {need} and a 16-bit float format; "
                            f"{scheme.target} has {', '.join(scheme.dtypes)}")
        return
    if spec not in LAYER_SCHEMES:
        raise NpucError(f"{node}: unknown layer scheme '{spec}'; choose one of "
                        f"{', '.join(LAYER_SCHEMES)} (w4a16 takes -g32, -g64 or -g128)")
    if spec == "int8" and scheme.precision != "int8":
        raise NpucError(f"{node}: int8 layers need int8 as the model's precision (the "
                        f"base here is {scheme.precision}); give the other layers a scheme")
    base = "fp8" if spec == "fp8-tensor" else spec
    if base != "fp32" and base not in scheme.dtypes:
        raise NpucError(f"{node}: {scheme.target} does not compute in {base}; it has "
                        f"{', '.join(scheme.dtypes)}")


class LazyRanges:
    """An observer's ranges, each computed when first asked for: the accuracy search
    tries another observer on a few tensors, and a histogram method's search for its
    threshold costs milliseconds per tensor. Pickled (to a worker), it carries the
    ranges computed so far, not the histograms."""

    def __init__(self, observers: dict, symmetric: bool):
        self.observers, self.symmetric, self.done = observers, symmetric, {}

    def get(self, name: str, default=None):
        if name not in self.done:
            o = self.observers.get(name)
            self.done[name] = o.range(256, self.symmetric) if o is not None and o.seen \
                else None
        r = self.done[name]
        return default if r is None else r

    def __getstate__(self):
        return {"observers": {}, "symmetric": self.symmetric, "done": dict(self.done)}


class Builder:
    """Builds quantized graphs from one calibration, for any :class:`Plan`."""

    def __init__(self, float_graph: Graph, scheme, stats, ranges: dict, calibration,
                 options: dict, method: str):
        self.float_graph = float_graph
        self.scheme = scheme
        self.stats = stats
        self.ranges = {method: ranges}
        self.calibration = calibration
        self.options = options
        self.method = method
        self.histograms = None  # one histogram pass, read by every histogram method

    def ranges_for(self, method: str, fanout=None) -> dict:
        """Ranges of every activation with ``method``'s observer, calibrated on first use
        (the histogram methods share one pass; ``fanout`` spreads it over workers)."""
        if method not in self.ranges:
            from .calibrate import calibrate
            from .observers import HISTOGRAM_METHODS, as_method

            if method in HISTOGRAM_METHODS:
                if self.histograms is None:
                    self.histograms = calibrate(self.float_graph, self.calibration,
                                                HISTOGRAM_METHODS[0], False,
                                                fanout=fanout).observers
                self.ranges[method] = LazyRanges(
                    {k: as_method(o, method) for k, o in self.histograms.items()},
                    self.scheme.act_symmetric)
            else:
                observers = calibrate(self.float_graph, self.calibration, method, False,
                                      fanout=fanout).observers
                self.ranges[method] = {k: o.range(256, self.scheme.act_symmetric)
                                       for k, o in observers.items() if o.seen}
        return self.ranges[method]

    def __getstate__(self):
        # workers get the ranges (small), not the histograms they were read from
        state = dict(self.__dict__)
        state["histograms"] = None
        return state

    def range_of(self, plan: Plan, name: str):
        method = plan.methods.get(name, self.method)
        return self.ranges_for(method).get(name, self.ranges[self.method].get(name))

    def build(self, plan: Plan | None = None) -> Graph:
        """The quantized graph for ``plan`` (the defaults when None)."""
        plan = plan or Plan()
        precision = self.scheme.precision
        names = set(self.ranges[self.method]) | set(plan.methods)
        amax = {}
        for n in names:
            r = self.range_of(plan, n)
            if r is not None:
                amax[n] = max(-r[0], r[1])
        other = {n: s for n, s in plan.layers.items() if s != precision}
        if precision == "int8":
            act = {n: activation_params(*self.range_of(plan, n), self.scheme) for n in names
                   if self.range_of(plan, n) is not None}
            options = dict(self.options)
            options["keep_float"] = set(self.options.get("keep_float", ())) | set(other)
            options["keep_reason"] = {n: plan.reasons.get(n, f"mixed precision: {s}")
                                      for n, s in other.items()}
            g = self._copy()
            rw = Rewriter(g, self.scheme, act, self.stats, options)
            rw.run(options["keep_float"])
            mapping = rw.float_of
        else:
            from .floatq import rewrite_float

            g = self._copy()
            from .rewrite import keep_reasons

            keep = keep_reasons(self.options.get("keep_float", ()))
            keep.update({n: plan.reasons.get(n, f"mixed precision: {s}")
                         for n, s in other.items()})
            rewrite_float(g, precision, amax, keep, table_format=half_precision(self.scheme))
            mapping = {}
        self._apply_layers(g, other, amax)
        g.meta["quantize"] = {"scheme": self.scheme, "float_graph": self.float_graph,
                              "map": mapping, "layers": dict(plan.layers)}
        return g

    def _copy(self) -> Graph:
        """The float graph copied with a decision log of its own: a candidate's decisions
        belong to that candidate, so those of the many built and discarded by the accuracy
        search (here or in a worker) never reach the chosen one's log."""
        g = self.float_graph.copy()
        log = g.meta["decisions"] = DecisionLog()
        log.entries = list(log_of(self.float_graph))
        return g

    def _apply_layers(self, g: Graph, layers: dict, amax: dict) -> None:
        from .floatq import rewrite_float
        from .weightonly import parse_weight_only, rewrite_weight_only

        by_name = {n.name: n for n in g.nodes}
        for name, spec in sorted(layers.items()):
            node = by_name.get(name)
            if node is None:
                continue
            wo = parse_weight_only(spec)
            if wo is not None:
                why = rewrite_weight_only(g, node, wo[0], wo[1], half_precision(self.scheme))
                if why:
                    log_of(g).record("quantize", name, "kept float", f"{spec}: {why}")
            elif spec in FLOATS:
                rewrite_float(g, spec, amax, only={name})
            elif spec == "fp32":
                log_of(g).record("quantize", name, "fp32", "computes in float32")
        for v in list(g.constants.values()):
            if not v.uses and v not in g.outputs:
                g.remove_constant(v)

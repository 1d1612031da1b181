"""Calibration sees each activation as its node makes it (the run then drops it, or
overwrites it in place, as a plain run does): the values seen are bit for bit those a run
keeping every activation as a graph output gives, and the observers' finite-values fast
path keeps their state exactly what filtering the values first gives."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import npuc
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.quantize.calibrate import calibrate, observe_run, observed_values
from npuc.compiler.quantize.observers import OBSERVERS, make_observer


def _probe_outputs(graph, feeds):
    probe = graph.copy()
    by_name = {v.name: v for v in probe.values()}
    probe.outputs.extend(by_name[v.name] for v in observed_values(graph)
                         if by_name[v.name] not in probe.outputs)
    return execute(probe, feeds, products="float32")


def test_streamed_values_are_those_of_a_run_keeping_them_all():
    from npuc import zoo

    # convolutions with in-place Relu and residual Adds: their inputs die where they are
    # read, so a plain run overwrites them
    graph = npuc.optimize(npuc.load_model(zoo.build("resnet-tiny")), level=2)
    feeds = zoo.sample_inputs("resnet-tiny", batch=2, seed=3)
    seen = {}
    observe_run(graph, feeds, lambda name, x: seen.setdefault(name, []).append(x.copy()))
    want = _probe_outputs(graph, feeds)
    names = [v.name for v in observed_values(graph)]
    assert sorted(seen) == sorted(names) and len(names) > 20
    for name in names:
        assert len(seen[name]) == 1
        assert seen[name][0].dtype == want[name].dtype
        assert np.array_equal(seen[name][0], want[name], equal_nan=True), name


def test_calibrated_ranges_are_the_extremes_of_every_activation():
    from npuc import zoo

    graph = npuc.load_model(zoo.build("mobilenetv2-tiny"))
    batches = [zoo.sample_inputs("mobilenetv2-tiny", seed=s) for s in range(3)]
    stats = calibrate(graph, batches, progress=False)
    runs = [_probe_outputs(graph, b) for b in batches]
    for name, obs in stats.observers.items():
        assert obs.lo == min(float(r[name].min()) for r in runs), name
        assert obs.hi == max(float(r[name].max()) for r in runs), name


_SPECIAL = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -3e-12])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6, width=32), _SPECIAL), max_size=300),
       st.sampled_from(sorted(OBSERVERS)), st.sampled_from([np.float32, np.float64]))
def test_observing_equals_observing_the_finite_values(values, method, dtype):
    x = np.array(values, dtype)
    fast, slow = make_observer(method), make_observer(method)
    fast.observe(x)
    slow.observe(x[np.isfinite(x)])
    assert (fast.lo, fast.hi) == (slow.lo, slow.hi)
    assert np.array_equal(getattr(fast, "counts", 0), getattr(slow, "counts", 0))
    assert getattr(fast, "amax", 0) == getattr(slow, "amax", 0)

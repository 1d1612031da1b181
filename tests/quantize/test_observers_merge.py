"""Calibration statistics merge exactly: observing the samples in parts (on several
workers) and merging the parts gives bit for bit what one observer of all of them gives,
for every split and every order."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npuc
from npuc.compiler.quantize.calibrate import CalibrationJob
from npuc.compiler.quantize.exactsum import ExactSum
from npuc.compiler.quantize.observers import OBSERVERS, make_observer


@st.composite
def batches_and_split(draw):
    """Batches of values over many scales (with zeros, infinities and outliers), a split
    of them into parts, and an order to merge the parts in."""
    n = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2 ** 31))
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n):
        size = int(rng.integers(1, 3000))
        x = rng.standard_normal(size) * 10.0 ** rng.uniform(-6, 3)
        x[rng.random(size) < 0.1] = 0.0
        if rng.random() < 0.3:
            x[rng.integers(size)] = rng.choice([np.inf, -np.inf, 1e4, -3e-12])
        if rng.random() < 0.5:
            x = np.maximum(x, 0)  # one-signed, as after a ReLU
        batches.append(x.astype(draw(st.sampled_from([np.float32, np.float64, np.float16]))))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    bounds = [0, *cuts, n]
    parts = [batches[a:b] for a, b in zip(bounds, bounds[1:])]
    order = draw(st.permutations(range(len(parts))))
    return batches, parts, order


def _state(obs):
    return (obs.lo, obs.hi, getattr(obs, "amax", None), getattr(obs, "base", None),
            getattr(obs, "counts", np.zeros(0)).tobytes())


@settings(max_examples=60, deadline=None)
@given(batches_and_split(), st.sampled_from(sorted(OBSERVERS)))
def test_merged_parts_equal_one_observer(data, method):
    batches, parts, order = data
    whole = make_observer(method)
    for b in batches:
        whole.observe(b)
    merged = make_observer(method)
    for k in order:
        part = make_observer(method)
        for b in parts[k]:
            part.observe(b)
        merged.merge(part)
    assert _state(merged) == _state(whole)
    for symmetric in (False, True):
        assert merged.range(256, symmetric) == whole.range(256, symmetric)


@settings(max_examples=40, deadline=None)
@given(batches_and_split())
def test_histogram_does_not_depend_on_batch_order(data):
    batches, _, _ = data
    one, two = make_observer("entropy"), make_observer("entropy")
    for b in batches:
        one.observe(b)
    for b in reversed(batches):
        two.observe(b)
    assert _state(one) == _state(two)
    assert one.hist.tobytes() == two.hist.tobytes()


def test_histogram_spreads_counts_over_linear_bins():
    x = np.random.default_rng(1).uniform(0, 4, 100_000).astype(np.float32)
    obs = make_observer("percentile")
    obs.observe(x)
    h = obs.hist
    assert h.sum() == obs.total == 100_000
    # the buckets are 0.2% wide: the cumulative counts follow a direct histogram's closely
    direct, _ = np.histogram(x, bins=h.size, range=(0, obs.amax))
    assert np.abs(np.cumsum(h) - np.cumsum(direct)).max() < 0.002 * 100_000
    assert abs(obs.range()[1] - 4 * 0.9999) < 4 * 0.003


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(allow_nan=False, width=64), min_size=3, max_size=3),
                min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_exact_sum_is_order_free(rows, rnd):
    arrays = [np.array(r) for r in rows]
    a, b = ExactSum(), ExactSum()
    for x in arrays:
        a.add(x)
    shuffled = list(arrays)
    rnd.shuffle(shuffled)
    half = len(shuffled) // 2
    b1, b2 = ExactSum(), ExactSum()
    for x in shuffled[:half]:
        b1.add(x)
    for x in shuffled[half:]:
        b2.add(x)
    b.merge(b2)
    b.merge(b1)
    assert a.value().tobytes() == b.value().tobytes()
    import math

    finite = [np.isfinite(np.sum([x[i] for x in arrays])) for i in range(3)]
    for i in range(3):
        if finite[i] and all(np.isfinite(x[i]) for x in arrays):
            assert a.value()[i] == math.fsum(x[i] for x in arrays)


def test_calibration_stats_of_parts_merge_into_the_whole():
    """Channel means (bias correction) and column maxima (SmoothQuant) too."""
    from npuc.compiler.quantize.api import random_calibration
    from npuc.compiler.quantize.prepare import prepare

    g = prepare(npuc.load_model("zoo:resnet-tiny"))
    batches = random_calibration(g, 5, seed=3)
    convs = sorted({n.inputs[0].name for n in g.nodes if n.op_type == "Conv"})
    job = CalibrationJob(g, batches, "mse", convs, convs)
    whole = job.run(range(5))
    merged = job.run(range(3, 5))
    merged.merge(job.run(range(0, 1)))
    merged.merge(job.run(range(1, 3)))
    assert merged.batches == whole.batches == 5
    assert sorted(merged.observers) == sorted(whole.observers)
    for name, obs in whole.observers.items():
        assert _state(merged.observers[name]) == _state(obs)
    for name in convs:
        assert merged.channel_mean(name).tobytes() == whole.channel_mean(name).tobytes()
        assert merged.column_absmax[name].tobytes() == whole.column_absmax[name].tobytes()


@settings(max_examples=40, deadline=None)
@given(batches_and_split(), st.sampled_from(["percentile", "entropy", "mse"]),
       st.sampled_from(["percentile", "entropy", "mse"]))
def test_one_histogram_pass_serves_every_histogram_method(data, seen_as, method):
    """The accuracy search reads every histogram method from one calibration pass: the
    range equals that of a pass with the method's own observer."""
    from npuc.compiler.quantize.observers import as_method

    batches, _, _ = data
    own, other = make_observer(method), make_observer(seen_as)
    for b in batches:
        own.observe(b)
        other.observe(b)
    read = as_method(other, method)
    assert type(read) is type(own) and _state(read) == _state(own)
    for symmetric in (False, True):
        assert read.range(256, symmetric) == own.range(256, symmetric)


def test_minmax_is_not_read_from_a_histogram():
    from npuc.compiler.quantize.observers import as_method

    obs = make_observer("percentile")
    obs.observe(np.arange(10.0))
    with pytest.raises(ValueError, match="histogram"):
        as_method(obs, "minmax")


def test_a_histogram_received_read_only_still_merges():
    """Ray hands a worker's counts back as a read-only view of its object store."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(5000), rng.standard_normal(5000) * 3
    whole = make_observer("entropy")
    whole.observe(a)
    whole.observe(b)
    first, second = make_observer("entropy"), make_observer("entropy")
    first.observe(a)
    second.observe(b)
    first.counts.flags.writeable = False
    first.merge(second)
    assert _state(first) == _state(whole)

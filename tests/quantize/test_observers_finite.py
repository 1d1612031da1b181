"""Observers see only finite values: a mask's -inf must not make every range infinite."""

import numpy as np

from npuc.compiler.quantize.observers import EntropyObserver, MinMaxObserver


def test_minmax_ignores_infinities():
    obs = MinMaxObserver()
    obs.observe(np.array([-np.inf, -1.5, 0.25, 2.0, np.inf, np.nan], np.float32))
    assert obs.range() == (-1.5, 2.0)


def test_histogram_observer_ignores_infinities():
    obs = EntropyObserver()
    x = np.random.default_rng(0).standard_normal(20000).astype(np.float32)
    x[:100] = -np.inf
    obs.observe(x)
    lo, hi = obs.range()
    assert np.isfinite(lo) and np.isfinite(hi) and -6 < lo < 0 < hi < 6

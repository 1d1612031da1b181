"""Observers: what range of values a tensor should be quantized to, from calibration data.

Each observer sees the calibration batches one at a time (:meth:`Observer.observe`) and
answers :meth:`Observer.range` with a clipping range ``(lo, hi)``:

- ``MinMaxObserver``: the smallest and largest value seen.
- ``PercentileObserver``: the 99.99th percentile of ``|x|`` (both tails when signed).
- ``EntropyObserver``: TensorRT's KL-divergence calibration: a 2048-bin histogram of
  ``|x|``; for each candidate threshold (bin 128 to 2048) the clipped distribution is
  compared with its 128-level quantized version, and the threshold with the least KL
  divergence wins. (onnxruntime's default ``num_quantized_bins`` equals its bin count,
  which makes its search end at the maximum, i.e. MinMax; here there are 16x more bins
  than levels, so the search matters.)
- ``MSEObserver``: the range that minimises the expected squared quantization error
  (rounding plus clipping) of the histogram, searched over shrinking ranges.

The histogram observers stream: their 2048 bins span the largest ``|x|`` seen so far, and
when a batch exceeds it the existing counts are merged into a wider histogram (each old
bin's count goes to the new bin holding its centre), so memory stays constant.
"""

from __future__ import annotations

import numpy as np

BINS = 2048
MIN_SAMPLES = 8192  # below this, histogram methods fall back to MinMax


def _finite(x: np.ndarray) -> np.ndarray:
    """The finite values of ``x``: an infinity (a mask's -inf) has no integer code and would
    make every range infinite; it saturates to the end of the range instead."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        return x[np.isfinite(x)]
    return x


class Observer:
    """Base class: ``observe(x)`` per batch, then ``range()``."""

    def __init__(self):
        self.lo = np.inf
        self.hi = -np.inf

    def observe(self, x: np.ndarray) -> None:
        x = _finite(x)
        if x.size:
            self.lo = min(self.lo, float(np.min(x)))
            self.hi = max(self.hi, float(np.max(x)))

    @property
    def seen(self) -> bool:
        return self.lo <= self.hi

    def range(self, levels: int = 256, symmetric: bool = False) -> tuple[float, float]:
        """The clipping range; always contains 0 (so zero is exact)."""
        return min(self.lo, 0.0), max(self.hi, 0.0)


class MinMaxObserver(Observer):
    """The range of all values seen."""


class HistogramObserver(Observer):
    """A streaming histogram of ``|x|`` with :data:`BINS` bins over ``[0, amax]``."""

    def __init__(self, bins: int = BINS):
        super().__init__()
        self.bins = bins
        self.amax = 0.0
        self.hist = np.zeros(bins, dtype=np.float64)

    def observe(self, x: np.ndarray) -> None:
        x = _finite(x)
        if not x.size:
            return
        super().observe(x)
        a = np.abs(x.astype(np.float32, copy=False)).ravel()
        # Exact zeros (half of a ReLU's output) carry no rounding error and would
        # dominate the histogram's first bin; they are counted apart.
        a = a[a != 0]
        if not a.size:
            return
        amax = float(a.max())
        if amax > self.amax:
            self._widen(amax)
        h, _ = np.histogram(a, bins=self.bins, range=(0.0, self.amax))
        self.hist += h

    def _widen(self, amax: float) -> None:
        if self.amax > 0 and self.hist.any():
            width = self.amax / self.bins
            centres = (np.arange(self.bins) + 0.5) * width
            idx = np.minimum((centres / amax * self.bins).astype(np.int64), self.bins - 1)
            merged = np.zeros(self.bins)
            np.add.at(merged, idx, self.hist)
            self.hist = merged
        self.amax = amax

    def _clip_to(self, t: float) -> tuple[float, float]:
        """A range clipped at threshold ``t`` on ``|x|``, respecting the signs seen."""
        lo = max(min(self.lo, 0.0), -t)
        hi = min(max(self.hi, 0.0), t)
        return lo, hi

    def threshold(self, levels: int, symmetric: bool) -> float:
        raise NotImplementedError

    def range(self, levels: int = 256, symmetric: bool = False) -> tuple[float, float]:
        # too few samples (e.g. a classifier's logits) to estimate a distribution
        if not self.seen or self.amax == 0.0 or self.hist.sum() < MIN_SAMPLES:
            return super().range()
        return self._clip_to(self.threshold(levels, symmetric))


class PercentileObserver(HistogramObserver):
    """Clip at a percentile of ``|x|`` (99.99 by default)."""

    def __init__(self, percentile: float = 99.99, bins: int = BINS):
        super().__init__(bins)
        self.percentile = percentile

    def threshold(self, levels, symmetric):
        cdf = np.cumsum(self.hist) / self.hist.sum()
        i = int(np.searchsorted(cdf, self.percentile / 100.0))
        return min(i + 1, self.bins) * self.amax / self.bins


class EntropyObserver(HistogramObserver):
    """TensorRT's entropy calibration (least KL divergence) over a 2048-bin histogram."""

    def __init__(self, bins: int = BINS, quant_bins: int = 128):
        super().__init__(bins)
        self.quant_bins = quant_bins

    def threshold(self, levels, symmetric):
        # a one-signed tensor (after ReLU) uses all levels for |x|; a signed one half
        nq = self.quant_bins if (symmetric or self.lo < 0) else min(2 * self.quant_bins, 255)
        hist = self.hist
        best_i, best_kl = self.bins, np.inf
        for i in range(nq, self.bins + 1, max(1, self.bins // 512)):
            kl = _kl_for_threshold(hist, i, nq)
            if kl < best_kl:
                best_i, best_kl = i, kl
        return best_i * self.amax / self.bins


def _kl_for_threshold(hist: np.ndarray, i: int, nq: int) -> float:
    """KL(P || Q): P is ``hist[:i]`` with the tail added to its last bin; Q is P merged
    into ``nq`` levels and spread back over the bins that were non-zero (TensorRT)."""
    p = hist[:i].copy()
    p[-1] += hist[i:].sum()
    nonzero = hist[:i] != 0
    edges = np.linspace(0, i, nq + 1).astype(np.int64)
    sums = np.add.reduceat(hist[:i], edges[:-1])
    counts = np.add.reduceat(nonzero.astype(np.float64), edges[:-1])
    lengths = np.diff(edges)
    keep = lengths > 0  # reduceat of an empty segment reads one element: drop it
    avg = np.where(counts[keep] > 0, sums[keep] / np.maximum(counts[keep], 1), 0.0)
    q = np.repeat(avg, lengths[keep]) * nonzero
    ps, qs = p.sum(), q.sum()
    if ps == 0 or qs == 0:
        return np.inf
    p /= ps
    q /= qs
    mask = p > 0
    qm = np.where(q[mask] > 0, q[mask], 1e-12)
    return float(np.sum(p[mask] * np.log(p[mask] / qm)))


class MSEObserver(HistogramObserver):
    """The clipping range with the least expected squared error over the histogram."""

    def threshold(self, levels, symmetric):
        width = self.amax / self.bins
        centres = (np.arange(self.bins) + 0.5) * width
        one_signed = not symmetric and self.lo >= 0
        steps = levels - 1 if one_signed else (levels - 1) / 2.0
        best_t, best_err = self.amax, np.inf
        for frac in np.linspace(0.05, 1.0, 96):
            t = frac * self.amax
            scale = t / steps
            q = np.minimum(np.round(centres / scale), steps) * scale
            err = float(np.sum(self.hist * (centres - q) ** 2))
            if err < best_err:
                best_t, best_err = t, err
        return best_t


OBSERVERS = {
    "minmax": MinMaxObserver,
    "percentile": PercentileObserver,
    "entropy": EntropyObserver,
    "mse": MSEObserver,
}


def make_observer(method: str) -> Observer:
    """An observer by name (``minmax``, ``percentile``, ``entropy``, ``mse``)."""
    from npuc.ir.errors import NpucError

    if method not in OBSERVERS:
        raise NpucError(f"unknown calibration method '{method}'; choose one of "
                        f"{', '.join(sorted(OBSERVERS))}")
    return OBSERVERS[method]()

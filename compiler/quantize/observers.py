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

Observers merge exactly (:meth:`Observer.merge`): observing samples in any order, or in
parts on several machines and merging the parts, gives the same state bit for bit, so a
calibration fanned out over workers writes the same artifacts as one process. Minimum and
maximum are exact; the histogram observers count ``|x|`` in integer buckets fixed in
advance by the float32 encoding itself (the exponent and the top :data:`MANTISSA_BITS`
bits of the mantissa: buckets 0.2% wide relative to their values, whatever the data), so
merging is adding integers. Only when a range is asked for are the buckets spread over
the :data:`BINS` linear bins on ``[0, max |x|]`` that the methods search (each bucket's
count spread evenly over its width), a function of the merged counts alone.
"""

from __future__ import annotations

import math

import numpy as np

BINS = 2048
MIN_SAMPLES = 8192  # below this, histogram methods fall back to MinMax
MANTISSA_BITS = 9
_SHIFT = 23 - MANTISSA_BITS
# |x| below 2**-40 (about 1e-12) shares one bucket with the values just above it: far
# below any clipping threshold, and it keeps the bucket array short.
_FLOOR = int(np.array(2.0 ** -40, np.float32).view(np.uint32)) >> _SHIFT


def _finite(x: np.ndarray) -> np.ndarray:
    """The finite values of ``x``: an infinity (a mask's -inf) has no integer code and would
    make every range infinite; it saturates to the end of the range instead."""
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        return x[np.isfinite(x)]
    return x


def _extremes(x: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """``(finite values of x, their minimum, their maximum)``, None when there are none.
    The minimum and maximum settle it for a finite tensor (NaN and infinities show in
    them), so the usual case reads ``x`` twice and copies nothing."""
    if not x.size:
        return None
    lo, hi = float(np.min(x)), float(np.max(x))
    if math.isfinite(lo) and math.isfinite(hi):
        return x, lo, hi
    x = _finite(x)
    return (x, float(np.min(x)), float(np.max(x))) if x.size else None


class Observer:
    """Base class: ``observe(x)`` per batch, ``merge(other)`` for a part seen elsewhere,
    then ``range()``."""

    def __init__(self):
        self.lo = np.inf
        self.hi = -np.inf

    def observe(self, x: np.ndarray) -> np.ndarray | None:
        """See a batch of values; returns its finite values (None when there are none)."""
        seen = _extremes(x)
        if seen is None:
            return None
        x, lo, hi = seen
        self.lo = min(self.lo, lo)
        self.hi = max(self.hi, hi)
        return x

    def merge(self, other: "Observer") -> None:
        """Absorb what ``other`` (of the same kind) saw, as if this observer had seen it."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a "
                            f"{type(self).__name__}")
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)

    @property
    def seen(self) -> bool:
        return self.lo <= self.hi

    def range(self, levels: int = 256, symmetric: bool = False) -> tuple[float, float]:
        """The clipping range; always contains 0 (so zero is exact)."""
        return min(self.lo, 0.0), max(self.hi, 0.0)


class MinMaxObserver(Observer):
    """The range of all values seen."""


class HistogramObserver(Observer):
    """Exact integer counts of ``|x|`` per float32 bucket; :attr:`hist` spreads them over
    :data:`BINS` linear bins on ``[0, amax]``."""

    def __init__(self, bins: int = BINS):
        super().__init__()
        self.bins = bins
        self.amax = 0.0
        self.base = 0  # the bucket number of counts[0]
        self.counts = np.zeros(0, dtype=np.int64)

    def observe(self, x: np.ndarray) -> np.ndarray | None:
        x = super().observe(x)
        if x is None:
            return None
        a = np.abs(x.astype(np.float32, copy=False)).ravel()
        # Exact zeros (half of a ReLU's output) carry no rounding error and would
        # dominate the histogram's first bin; they are counted apart.
        a = a[a != 0]
        if not a.size:
            return x
        self.amax = max(self.amax, float(a.max()))
        keys = np.maximum(a.view(np.uint32) >> _SHIFT, _FLOOR).astype(np.int64)
        lo = int(keys.min())
        self._add(lo, np.bincount(keys - lo))
        return x

    def merge(self, other: "HistogramObserver") -> None:
        super().merge(other)
        if other.bins != self.bins:
            raise ValueError("cannot merge histograms of different bin counts")
        self.amax = max(self.amax, other.amax)
        if other.counts.size:
            self._add(other.base, other.counts)

    def _add(self, base: int, counts: np.ndarray) -> None:
        """Add ``counts`` of buckets ``base, base + 1, ...``, widening the window."""
        if not self.counts.size:
            self.base, self.counts = base, counts.astype(np.int64)
            return
        start = min(self.base, base)
        stop = max(self.base + self.counts.size, base + counts.size)
        if (start, stop) != (self.base, self.base + self.counts.size):
            grown = np.zeros(stop - start, dtype=np.int64)
            grown[self.base - start:self.base - start + self.counts.size] = self.counts
            self.base, self.counts = start, grown
        elif not self.counts.flags.writeable:  # received from a worker, zero-copy
            self.counts = self.counts.copy()
        self.counts[base - start:base - start + counts.size] += counts

    @property
    def total(self) -> int:
        """How many non-zero finite values were seen."""
        return int(self.counts.sum())

    @property
    def hist(self) -> np.ndarray:
        """The counts over :data:`BINS` equal bins on ``[0, amax]`` (float64)."""
        if not self.counts.size or self.amax == 0.0:
            return np.zeros(self.bins)
        keys = np.arange(self.base, self.base + self.counts.size + 1, dtype=np.int64)
        edges = (keys << _SHIFT).astype(np.uint32).view(np.float32).astype(np.float64)
        if self.base == _FLOOR:
            edges[0] = 0.0  # the floor bucket holds everything below it
        edges = np.minimum(edges, self.amax)
        cdf = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.float64)
        at = np.linspace(0.0, self.amax, self.bins + 1)
        f = np.interp(at, edges, cdf)
        f[0], f[-1] = 0.0, cdf[-1]
        return np.diff(f)

    def _clip_to(self, t: float) -> tuple[float, float]:
        """A range clipped at threshold ``t`` on ``|x|``, respecting the signs seen."""
        lo = max(min(self.lo, 0.0), -t)
        hi = min(max(self.hi, 0.0), t)
        return lo, hi

    def threshold(self, levels: int, symmetric: bool) -> float:
        raise NotImplementedError

    def range(self, levels: int = 256, symmetric: bool = False) -> tuple[float, float]:
        # too few samples (e.g. a classifier's logits) to estimate a distribution
        if not self.seen or self.amax == 0.0 or self.total < MIN_SAMPLES:
            return super().range()
        return self._clip_to(self.threshold(levels, symmetric))


class PercentileObserver(HistogramObserver):
    """Clip at a percentile of ``|x|`` (99.99 by default)."""

    def __init__(self, percentile: float = 99.99, bins: int = BINS):
        super().__init__(bins)
        self.percentile = percentile

    def threshold(self, levels, symmetric):
        hist = self.hist
        cdf = np.cumsum(hist) / hist.sum()
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
        hist = self.hist
        for frac in np.linspace(0.05, 1.0, 96):
            t = frac * self.amax
            scale = t / steps
            q = np.minimum(np.round(centres / scale), steps) * scale
            err = float(np.sum(hist * (centres - q) ** 2))
            if err < best_err:
                best_t, best_err = t, err
        return best_t


OBSERVERS = {
    "minmax": MinMaxObserver,
    "percentile": PercentileObserver,
    "entropy": EntropyObserver,
    "mse": MSEObserver,
}


def as_method(obs: HistogramObserver, method: str) -> HistogramObserver:
    """A histogram observer of ``method`` holding what ``obs`` saw: the histogram methods
    differ only in how they pick a threshold from the same counts, so one calibration
    pass serves them all (the ranges are those of a pass with ``method``'s observer)."""
    new = make_observer(method)
    if not isinstance(obs, HistogramObserver) or not isinstance(new, HistogramObserver):
        raise ValueError(f"{method} does not read a histogram")
    if obs.bins != new.bins:
        raise ValueError("cannot read histograms of different bin counts")
    new.lo, new.hi, new.amax, new.base = obs.lo, obs.hi, obs.amax, obs.base
    new.counts = obs.counts
    return new


HISTOGRAM_METHODS = ("percentile", "entropy", "mse")


def make_observer(method: str) -> Observer:
    """An observer by name (``minmax``, ``percentile``, ``entropy``, ``mse``)."""
    from npuc.ir.errors import NpucError

    if method not in OBSERVERS:
        raise NpucError(f"unknown calibration method '{method}'; choose one of "
                        f"{', '.join(sorted(OBSERVERS))}")
    return OBSERVERS[method]()

"""Sums of float64 arrays that do not depend on the order they are added in.

Floating-point addition is not associative, so per-channel sums accumulated batch by
batch would differ in their last bits between one process and several workers whose
partial sums are added in another grouping. :class:`ExactSum` keeps every sum as an exact
integer multiple of ``2**-1126`` (every finite float64 is one), adds integers, and rounds
once, when the value is read.
"""

from __future__ import annotations

import numpy as np

_EXP = 1126  # 1074 (the smallest subnormal's exponent) + 52: every shift below is >= 0


class ExactSum:
    """An element-wise sum of float64 arrays of one shape, exact until read."""

    def __init__(self):
        self._ints: list[int] | None = None  # the sum times 2**_EXP, element by element
        self._special: np.ndarray | None = None  # the sum of the non-finite terms
        self.shape: tuple = ()

    def add(self, x: np.ndarray) -> None:
        """Add ``x`` (any float array; summed in float64 first when it has more axes
        than this sum keeps, so call it with the per-batch partial sum)."""
        x = np.asarray(x, dtype=np.float64)
        finite = np.isfinite(x)
        mant, exp = np.frexp(np.where(finite, x, 0.0))
        mant = (mant * 2.0 ** 53).astype(np.int64).ravel().tolist()
        shift = (exp.astype(np.int64) + (_EXP - 53)).ravel().tolist()
        ints = [m << s for m, s in zip(mant, shift)]
        if self._ints is None:
            self._ints, self.shape = ints, x.shape
            self._special = np.where(finite, 0.0, x)
            return
        if x.shape != self.shape:
            raise ValueError(f"cannot add an array of shape {x.shape} to a sum of {self.shape}")
        self._ints = [a + b for a, b in zip(self._ints, ints)]
        self._special = self._special + np.where(finite, 0.0, x)

    def merge(self, other: "ExactSum") -> None:
        """Add another sum's terms."""
        if other._ints is None:
            return
        if self._ints is None:
            self._ints, self.shape = list(other._ints), other.shape
            self._special = other._special.copy()
            return
        if other.shape != self.shape:
            raise ValueError(f"cannot merge sums of shapes {other.shape} and {self.shape}")
        self._ints = [a + b for a, b in zip(self._ints, other._ints)]
        self._special = self._special + other._special

    def value(self) -> np.ndarray:
        """The sum, rounded once to float64."""
        if self._ints is None:
            return np.zeros(0)
        scale = 1 << _EXP
        out = np.array([_divide(i, scale) for i in self._ints],
                       dtype=np.float64).reshape(self.shape)
        # inf + -inf is nan and inf + inf is inf whatever the order: exact as well
        return out + self._special


def _divide(i: int, scale: int) -> float:
    """``i / scale`` rounded once; a sum beyond float64's range is an infinity."""
    try:
        return i / scale
    except OverflowError:
        return float("inf") if i > 0 else float("-inf")

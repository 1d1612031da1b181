"""Where a program first stops computing what its IR computes.

The program and the IR it was lowered from must give the same bits (see
``kernels/accumulate.py``). When they do not, :func:`first_difference` runs the IR once,
keeping every value, then simulates the program and compares each command's output tile
with the same slice of the IR's value, in program order. The first tile that differs names
the group, the node, the tile and the first differing element: the place to look.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Difference:
    """The first command whose output differs from the IR's value."""

    command: int
    group: str | None
    node: str
    tensor: str
    tile: list | None        # [axis, start, stop] of the output written, None for whole
    index: tuple             # first differing element, in the tensor's coordinates
    program_value: float
    ir_value: float
    differing: int           # how many elements of the tile differ
    size: int

    def describe(self) -> str:
        where = f"group {self.group}, " if self.group else ""
        tile = (f"tile axis {self.tile[0]} [{self.tile[1]}:{self.tile[2]}]" if self.tile
                else "whole tensor")
        return (f"first difference at command {self.command} ({where}node '{self.node}', "
                f"{tile}): %{self.tensor}{list(self.index)} is {self.program_value!r} in "
                f"the program and {self.ir_value!r} in the IR ({self.differing} of "
                f"{self.size} elements of the tile differ)")

    def to_json(self) -> dict:
        return {"command": self.command, "group": self.group, "node": self.node,
                "tensor": self.tensor, "tile": self.tile, "index": list(self.index),
                "program_value": self.program_value, "ir_value": self.ir_value,
                "differing": self.differing, "size": self.size}


class _Found(Exception):
    def __init__(self, difference: Difference):
        super().__init__(difference.describe())
        self.difference = difference


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: equal values, NaN equal to NaN (ml_dtypes' floats included)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fV" or b.dtype.kind in "fV":
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        return (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    return a == b


def first_difference(graph, program: dict, weights: bytes, feeds: dict) -> Difference | None:
    """The first command of ``program`` whose output differs from ``graph``'s value on
    ``feeds``, or None when every command agrees."""
    from .interpreter import execute
    from .simulator import simulate

    values: dict[str, np.ndarray] = {}

    def keep(node, results):
        for out, r in zip(node.outputs, results):
            if out is not None:
                values[out.name] = np.asarray(r)

    execute(graph, feeds, observe=keep)

    def check(index, cmd, written):
        for r, got in zip(cmd["outputs"], written):
            if r is None or r["tensor"] not in values:
                continue
            want = values[r["tensor"]]
            tile = r.get("slice")
            origin = [0] * want.ndim
            if want.shape != tuple(r["shape"]):
                continue  # a buffer laid out apart from the IR's tensor: nothing to align
            if tile:
                axis, lo, hi = tile
                index_ = [slice(None)] * want.ndim
                index_[axis] = slice(lo, hi)
                want = want[tuple(index_)]
                origin[axis] = lo
            if got.shape != want.shape:
                continue
            equal = same_bits(got, want)
            if equal.all():
                continue
            first = np.unravel_index(int(np.argmin(equal.ravel())), equal.shape)
            where = tuple(int(i) + o for i, o in zip(first, origin))
            raise _Found(Difference(index, cmd.get("group"), cmd["node"], r["tensor"], tile,
                                    where, _scalar(got[first]), _scalar(want[first]),
                                    int(equal.size - equal.sum()), int(equal.size)))

    try:
        simulate(program, weights, feeds, check=check)
    except _Found as found:
        return found.difference
    return None


def _scalar(x) -> float:
    v = np.asarray(x)
    return float(v.astype(np.float64)) if v.dtype.kind in "fV" else int(v)

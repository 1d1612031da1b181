"""Answer agreement: does a compiled or quantized model give the float model's answer?

SQNR says how large the error is; what a user needs to know is whether the answer
changed. :func:`agreement` compares a candidate's outputs with a reference's over many
samples, output by output:

- ``sqnr_db`` over all samples together, ``sqnr_db_min`` of the worst sample, and the
  cosine similarity;
- the answer of a sample, by ``mode``:

  ``argmax``  the index of the largest score along ``axis`` (a classifier's class; for a
              sequence output, one class per position: tokens, CTC frames);
  ``ctc``     the per-position argmax with repeats merged and the ``blank`` class dropped
              (what a CTC text recognizer prints);
  ``none``    no answer: only SQNR and cosine;

  ``changed``: how many samples' answers differ; ``positions``: the share of positions
  whose argmax agrees; ``topk``: the mean overlap of the ``k`` largest scores.

A sample is one row along ``batch_axis`` of each output (0 by default; None: each
output dict is one sample). The result's ``changed_share`` is the share of samples
whose answer changed in any output. ``to_json`` gives plain data for ``--json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npuc.ir.errors import NpucError

MODES = ("auto", "argmax", "ctc", "none")


@dataclass
class OutputAgreement:
    """The comparison of one output over all samples."""

    name: str
    mode: str
    samples: int
    sqnr_db: float
    sqnr_db_min: float
    cosine: float
    changed: int = 0
    positions: float | None = None  # share of positions whose argmax agrees
    topk: float | None = None       # mean top-k overlap
    changed_samples: list = field(default_factory=list)

    @property
    def changed_share(self) -> float:
        return self.changed / self.samples if self.samples else 0.0


@dataclass
class Agreement:
    """Agreement of every output; ``changed_share``: samples with any answer changed."""

    outputs: dict
    samples: int
    changed_samples: list

    @property
    def changed_share(self) -> float:
        return len(self.changed_samples) / self.samples if self.samples else 0.0

    @property
    def min_sqnr_db(self) -> float:
        return min((o.sqnr_db for o in self.outputs.values()), default=200.0)

    @property
    def min_cosine(self) -> float:
        return min((o.cosine for o in self.outputs.values()), default=1.0)

    def to_json(self) -> dict:
        """Plain data: per output and the summary."""
        outs = {}
        for name, o in self.outputs.items():
            outs[name] = {"mode": o.mode, "samples": o.samples, "sqnr_db": o.sqnr_db,
                          "sqnr_db_min": o.sqnr_db_min, "cosine": o.cosine,
                          "changed": o.changed, "changed_share": o.changed_share,
                          "positions_agree": o.positions, "topk_overlap": o.topk,
                          "changed_samples": o.changed_samples}
        return {"samples": self.samples, "changed": len(self.changed_samples),
                "changed_share": self.changed_share, "changed_samples": self.changed_samples,
                "outputs": outs}

    def summary(self) -> str:
        """One line: how many samples changed their answer, and the worst SQNR."""
        return (f"{len(self.changed_samples)} of {self.samples} samples changed their answer "
                f"({self.changed_share:.1%}); lowest output SQNR {self.min_sqnr_db:.2f} dB, "
                f"cosine {self.min_cosine:.6f}")


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """SQNR of ``got`` against ``ref`` in dB, capped at 200 (identical) and -200."""
    r = np.asarray(ref, np.float64).ravel()
    g = np.asarray(got, np.float64).ravel()
    finite = np.isfinite(g).all() and np.isfinite(r).all()
    if not finite:
        return -200.0 if not np.array_equal(r, g, equal_nan=True) else 200.0
    noise, signal = float(np.sum((r - g) ** 2)), float(np.sum(r ** 2))
    if noise == 0:
        return 200.0
    if signal == 0:
        return -200.0
    return float(np.clip(10 * np.log10(signal / noise), -200.0, 200.0))


def cosine(ref: np.ndarray, got: np.ndarray) -> float:
    """Cosine similarity of the flattened arrays (1.0 for two zero arrays)."""
    r = np.asarray(ref, np.float64).ravel()
    g = np.asarray(got, np.float64).ravel()
    d = float(np.linalg.norm(r) * np.linalg.norm(g))
    if not np.isfinite(d):
        return 0.0
    if d == 0:
        return 1.0 if np.array_equal(r, g) else 0.0
    return float(r @ g / d)


def answers(scores: np.ndarray, mode: str, axis: int = -1, blank: int = 0):
    """The answer of one sample's ``scores``: an index array (argmax) or a tuple (ctc)."""
    a = np.asarray(scores)
    if a.ndim == 0:
        return None
    idx = np.argmax(a, axis=axis)
    if mode == "ctc":
        seq = idx.ravel()
        keep = np.ones(seq.size, bool)
        keep[1:] = seq[1:] != seq[:-1]
        return tuple(int(c) for c in seq[keep] if c != blank)
    return idx


def topk_overlap(ref: np.ndarray, got: np.ndarray, k: int, axis: int = -1) -> float:
    """The mean share of the ``k`` largest scores of ``ref`` also among those of ``got``."""
    r, g = np.moveaxis(np.asarray(ref), axis, -1), np.moveaxis(np.asarray(got), axis, -1)
    k = min(k, r.shape[-1])
    if k <= 0:
        return 1.0
    r = r.reshape(-1, r.shape[-1])
    g = g.reshape(-1, g.shape[-1])
    rt = np.argsort(-r, axis=1, kind="stable")[:, :k]
    gt = np.argsort(-g, axis=1, kind="stable")[:, :k]
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in zip(rt, gt)]
    return float(np.mean(hits)) / k


def _mode_for(arr: np.ndarray, mode: str, axis: int) -> str:
    if mode != "auto":
        return mode
    # a class axis of at least two scores in a float output: an answer to compare
    if arr.dtype.kind == "f" and arr.ndim >= 1 and arr.shape[axis] >= 2:
        return "argmax"
    return "none"


def _rows(outs: list[dict], name: str, batch_axis: int | None) -> list[np.ndarray]:
    rows = []
    for i, o in enumerate(outs):
        if name not in o:
            raise NpucError(f"sample {i} has no output '{name}'")
        a = np.asarray(o[name])
        if batch_axis is None or a.ndim == 0:
            rows.append(a)
        else:
            rows.extend(np.take(a, j, axis=batch_axis) for j in range(a.shape[batch_axis]))
    return rows


def agreement(reference, candidate, mode: str = "auto", axis: int = -1, k: int = 5,
              blank: int = 0, batch_axis: int | None = 0, outputs=None) -> Agreement:
    """Compare ``candidate`` outputs with ``reference`` outputs over all samples.

    Both are an output dict or a list of them (same length, same order). ``mode``,
    ``axis`` (the class axis of one sample), ``k`` and ``blank`` are described in the
    module docstring; ``outputs`` limits the comparison to these output names.
    """
    if mode not in MODES:
        raise NpucError(f"unknown agreement mode '{mode}'; choose one of {', '.join(MODES)}")
    refs = [reference] if isinstance(reference, dict) else list(reference)
    cands = [candidate] if isinstance(candidate, dict) else list(candidate)
    if len(refs) != len(cands):
        raise NpucError(f"{len(refs)} reference samples but {len(cands)} candidate samples")
    names = list(outputs) if outputs is not None else sorted(refs[0]) if refs else []
    result, changed_any, n = {}, set(), 0
    for name in names:
        r_rows, c_rows = _rows(refs, name, batch_axis), _rows(cands, name, batch_axis)
        n = max(n, len(r_rows))
        if any(r.shape != c.shape for r, c in zip(r_rows, c_rows)):
            raise NpucError(f"output '{name}': the shapes of the two runs differ")
        per = [sqnr_db(r, c) for r, c in zip(r_rows, c_rows)]
        flat_r = np.concatenate([r.ravel() for r in r_rows]) if r_rows else np.zeros(0)
        flat_c = np.concatenate([c.ravel() for c in c_rows]) if c_rows else np.zeros(0)
        m = _mode_for(r_rows[0], mode, axis) if r_rows else "none"
        o = OutputAgreement(name, m, len(r_rows), sqnr_db(flat_r, flat_c),
                            min(per, default=200.0), cosine(flat_r, flat_c))
        if m != "none":
            _answer_stats(o, r_rows, c_rows, m, axis, k, blank)
            changed_any.update(o.changed_samples)
        result[name] = o
    return Agreement(result, n, sorted(changed_any))


def _answer_stats(o: OutputAgreement, r_rows, c_rows, mode, axis, k, blank) -> None:
    agree_pos, total_pos, overlaps = 0, 0, []
    for i, (r, c) in enumerate(zip(r_rows, c_rows)):
        if r.ndim == 0:
            continue
        ra, ca = answers(r, "argmax", axis), answers(c, "argmax", axis)
        agree_pos += int(np.sum(ra == ca))
        total_pos += ra.size
        overlaps.append(topk_overlap(r, c, k, axis))
        same = answers(r, "ctc", axis, blank) == answers(c, "ctc", axis, blank) \
            if mode == "ctc" else bool(np.array_equal(ra, ca))
        if not same:
            o.changed += 1
            o.changed_samples.append(i)
    o.positions = agree_pos / total_pos if total_pos else None
    o.topk = float(np.mean(overlaps)) if overlaps else None

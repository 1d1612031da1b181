"""Answer agreement: does a compiled or quantized model give the float model's answer?

SQNR says how large the error is; what a user needs to know is whether the answer
changed. :func:`agreement` compares a candidate's outputs with a reference's over many
samples, output by output:

- ``sqnr_db`` over all samples together, ``sqnr_db_min`` of the worst sample, and the
  cosine similarity;
- the answer of a sample, by ``mode``:

  ``argmax``  the index of the largest score along ``axis`` (a classifier's class; for a
              sequence output, one class per position: tokens, frames), counted only
              where the float answer is decided (below);
  ``ctc``     the per-position argmax with repeats merged and the ``blank`` class dropped
              (what a CTC text recognizer prints);
  ``auto``    ``ctc`` for an output that reads as CTC (:func:`looks_ctc`), ``argmax`` for
              other float outputs with a class axis, else ``none``;
  ``none``    no answer: only SQNR and cosine;

  ``changed``: how many samples' answers differ; ``positions``: the share of positions
  whose argmax agrees; ``topk``: the mean overlap of the ``k`` largest scores;
  ``undecided``: argmax flips not counted because the float model itself was undecided.

**Decided positions.** In an output with many positions per sample (a detector's anchors,
a recognizer's frames, a segmentation's pixels) a position's argmax change counts only
when the reference scores the candidate's pick more than ``margin`` x the output's scale
below its own top-1 (the scale: the range, max - min, of the reference output over all
judged samples). A classifier's one answer per sample always counts. A near-tie
in the float model (a detector's background anchor, a blank-vs-character transition
frame) swapping its order is not a changed answer; a flip of a position whose top-1 beats
its runner-up by more than that is always one, and so is a non-finite candidate score
where the reference's are finite. ``margin=0`` counts every flip to a lower-scored class.
A CTC text counts as changed only when it needs a decided frame changed
(:func:`ctc_near`).

A sample is one row along ``batch_axis`` of each output (0 by default; None: each
output dict is one sample). The result's ``changed_share`` is the share of samples
whose answer changed in any output. ``to_json`` gives plain data for ``--json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npuc.ir.errors import NpucError

MODES = ("auto", "argmax", "ctc", "none")
MARGIN = 0.1      # of the output's scale: a top-1 lead below it is undecided
CTC_BLANK_SHARE = 1 / 3  # frames whose argmax is the blank, for an output to read as CTC
CTC_MIN_FRAMES = 8


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
    undecided: int = 0              # argmax flips where the float model was undecided
    blank: int | None = None        # the CTC blank class (ctc mode)

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
                          "undecided_flips": o.undecided, "blank": o.blank,
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


def looks_ctc(rows: list, axis: int = -1, blank: int = 0) -> int | None:
    """The blank class when the reference ``rows`` (one array per sample) read as a CTC
    output, else None: a float sequence (one axis of at least :data:`CTC_MIN_FRAMES`
    positions besides the class axis, the others of size 1) of at least 3 classes whose
    argmax is one class, ``blank`` or the last, on at least :data:`CTC_BLANK_SHARE` of
    all frames. That is what a CTC recognizer's per-frame scores look like; a tagger or
    classifier whose first class dominates as much is judged by ``ctc`` too, and is
    compared with ``--agree argmax`` instead."""
    if not rows or rows[0].dtype.kind != "f" or rows[0].ndim < 2:
        return None
    shape = list(rows[0].shape)
    classes = shape.pop(axis % len(shape))
    if classes < 3 or max(shape) < CTC_MIN_FRAMES or sum(d > 1 for d in shape) != 1:
        return None
    ids = np.concatenate([np.argmax(r, axis=axis).ravel() for r in rows])
    for b in dict.fromkeys((blank % classes, classes - 1)):
        if np.mean(ids == b) >= CTC_BLANK_SHARE:
            return b
    return None


def _mode_for(rows: list, mode: str, axis: int, blank: int) -> tuple[str, int]:
    if mode == "auto":
        b = looks_ctc(rows, axis, blank)
        if b is not None:
            return "ctc", b
        # a class axis of at least two scores in a float output: an answer to compare
        a = rows[0]
        if a.dtype.kind == "f" and a.ndim >= 1 and a.shape[axis] >= 2:
            return "argmax", blank
        return "none", blank
    return mode, blank


def output_scale(rows: list) -> float:
    """The scale margins are relative to: max - min of the finite reference values."""
    lo, hi = np.inf, -np.inf
    for r in rows:
        f = np.asarray(r, np.float64)
        f = f[np.isfinite(f)]
        if f.size:
            lo, hi = min(lo, float(f.min())), max(hi, float(f.max()))
    return hi - lo if hi > lo else 0.0


def flipped(ref: np.ndarray, got: np.ndarray, axis: int = -1,
            threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(changed, undecided)`` boolean arrays over positions: the argmax of ``got`` is a
    class ``ref`` scores more than ``threshold`` below its own top-1 (or ``got`` is not
    finite where ``ref`` is), and argmax flips not counted because they are within it."""
    r, g = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    ra, ga = np.argmax(r, axis=axis), np.argmax(g, axis=axis)
    top = np.take_along_axis(r, np.expand_dims(ra, axis), axis).squeeze(axis)
    pick = np.take_along_axis(r, np.expand_dims(ga, axis), axis).squeeze(axis)
    with np.errstate(invalid="ignore"):
        lower = top - pick > threshold
    bad = ~np.isfinite(g).all(axis=axis) & np.isfinite(r).all(axis=axis)
    changed = lower | bad
    return changed, (ra != ga) & ~changed


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
              blank: int = 0, batch_axis: int | None = 0, outputs=None,
              margin: float = MARGIN) -> Agreement:
    """Compare ``candidate`` outputs with ``reference`` outputs over all samples.

    Both are an output dict or a list of them (same length, same order). ``mode``,
    ``axis`` (the class axis of one sample), ``k``, ``blank`` and ``margin`` are
    described in the module docstring; ``outputs`` limits the comparison to these
    output names.
    """
    if mode not in MODES:
        raise NpucError(f"unknown agreement mode '{mode}'; choose one of {', '.join(MODES)}")
    if not margin >= 0:
        raise NpucError(f"the answer margin must be at least 0, not {margin}")
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
        m, b = _mode_for(r_rows, mode, axis, blank) if r_rows else ("none", blank)
        o = OutputAgreement(name, m, len(r_rows), sqnr_db(flat_r, flat_c),
                            min(per, default=200.0), cosine(flat_r, flat_c))
        if m != "none":
            o.blank = b if m == "ctc" else None
            # one answer per sample (a classifier): it is the answer, near-tie or not
            dense = r_rows[0].ndim > 1 and r_rows[0].size > r_rows[0].shape[axis]
            _answer_stats(o, r_rows, c_rows, axis, k,
                          margin * output_scale(r_rows) if dense else 0.0)
            changed_any.update(o.changed_samples)
        result[name] = o
    return Agreement(result, n, sorted(changed_any))


def ctc_near(ref: np.ndarray, got: np.ndarray, axis: int, blank: int,
             changed: np.ndarray, text: tuple) -> bool:
    """Whether ``text``, the candidate ``got``'s reading, is one the float model nearly
    read: the candidate's frames with every decided flip (``changed``, from
    :func:`flipped`) put back to the float model's pick still decode to it. A text that
    differs only at frames where the float model was undecided (a space at 0.47 against
    a blank at 0.40) passes; one that needs a decided frame changed does not."""
    if not np.isfinite(got).all() and np.isfinite(ref).all():
        return False
    near = np.where(changed, np.argmax(ref, axis=axis), np.argmax(got, axis=axis)).ravel()
    keep = np.ones(near.size, bool)
    keep[1:] = near[1:] != near[:-1]
    return tuple(int(c) for c in near[keep] if c != blank) == text


def _answer_stats(o: OutputAgreement, r_rows, c_rows, axis, k, threshold) -> None:
    agree_pos, total_pos, overlaps = 0, 0, []
    for i, (r, c) in enumerate(zip(r_rows, c_rows)):
        if r.ndim == 0:
            continue
        ra, ca = answers(r, "argmax", axis), answers(c, "argmax", axis)
        agree_pos += int(np.sum(ra == ca))
        total_pos += ra.size
        overlaps.append(topk_overlap(r, c, k, axis))
        changed, undecided = flipped(r, c, axis, threshold)
        if o.mode == "ctc":
            text = answers(c, "ctc", axis, o.blank)
            exact = text == answers(r, "ctc", axis, o.blank) and bool(
                np.isfinite(c).all() or not np.isfinite(r).all())
            same = exact or ctc_near(r, c, axis, o.blank, changed, text)
            o.undecided += int(same and not exact)  # texts the float model nearly read
        else:
            same = not changed.any()
            o.undecided += int(undecided.sum())
        if not same:
            o.changed += 1
            o.changed_samples.append(i)
    o.positions = agree_pos / total_pos if total_pos else None
    o.topk = float(np.mean(overlaps)) if overlaps else None

"""The accuracy a user asks for: ``--accuracy "argmax<=1%"`` and its relatives.

A requirement is a comma-separated list of terms, each ``measure op value``:

==================  ======================================================================
``answer<=1%``      at most 1% of the samples change the answer of any output with one:
                    the decoded text of an output that reads as CTC, else the argmax of
                    its class axis (the last; ``answer:1<=1%`` names another)
``argmax<=1%``      the same, every output judged by its argmax; for a sequence output
                    (tokens, frames) a sample changes when any position decided in the
                    float model does (:mod:`npuc.compiler.accuracy`)
``ctc<=0%``         the same with CTC decoding (repeats merged, class 0 the blank)
``sqnr>=30``        every output at least 30 dB SQNR against the float model
``cosine>=0.999``   every output's cosine similarity at least 0.999
==================  ======================================================================

``off`` (or ``none``) turns the requirement off. The default is :data:`DEFAULT`; an
answer term applies to outputs with a class axis, and when no output has one it is
replaced by ``sqnr>=`` :data:`FALLBACK_SQNR`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from npuc.ir.errors import NpucError

DEFAULT = "answer<=1%"
ANSWERS = ("answer", "argmax", "ctc")  # the terms on the share of changed answers
FALLBACK_SQNR = 25.0
_TERM = re.compile(r"^\s*(answer|argmax|ctc|sqnr|cosine)(?::(-?\d+))?\s*(<=|>=)\s*"
                   r"([0-9]*\.?[0-9]+)\s*(%?)\s*$")
_OPS = {"answer": "<=", "argmax": "<=", "ctc": "<=", "sqnr": ">=", "cosine": ">="}


@dataclass(frozen=True)
class Term:
    """One bound: ``measure`` (answer, argmax, ctc, sqnr, cosine), its class ``axis`` and
    value."""

    measure: str
    value: float
    axis: int = -1

    def __str__(self) -> str:
        if self.measure in ANSWERS:
            ax = "" if self.axis == -1 else f":{self.axis}"
            return f"{self.measure}{ax}<={self.value * 100:g}%"
        return f"{self.measure}>={self.value:g}"


@dataclass(frozen=True)
class Requirement:
    """A parsed requirement; :meth:`check` tells whether an agreement meets it."""

    terms: tuple

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)

    @property
    def answer_mode(self) -> str:
        """The agreement mode the requirement needs measured (auto, argmax, ctc or none)."""
        for t in self.terms:
            if t.measure in ANSWERS:
                return "auto" if t.measure == "answer" else t.measure
        return "none"

    @property
    def axis(self) -> int:
        return next((t.axis for t in self.terms if t.measure in ANSWERS), -1)

    def shortfall(self, agreement) -> float:
        """How far ``agreement`` is from the requirement (0: met). Each term adds its
        distance in its own unit: shares of samples, dB / 10, cosine x 100."""
        total = 0.0
        for t in self.terms:
            if t.measure in ANSWERS:
                judged = [o for o in agreement.outputs.values() if o.mode != "none"]
                if not judged:
                    total += max(0.0, FALLBACK_SQNR - agreement.min_sqnr_db) / 10
                    continue
                share = agreement.changed_share
                total += max(0.0, share - t.value) if share > t.value + 1e-12 else 0.0
            elif t.measure == "sqnr":
                total += max(0.0, t.value - agreement.min_sqnr_db) / 10
            else:
                total += max(0.0, t.value - agreement.min_cosine) * 100
        return total

    def met(self, agreement) -> bool:
        return self.shortfall(agreement) == 0.0


def parse_requirement(text) -> Requirement | None:
    """A :class:`Requirement` from ``text`` (None for ``off``/``none``); a Requirement
    passes through. Errors name the term that is wrong."""
    if text is None or isinstance(text, Requirement):
        return text
    s = str(text).strip()
    if s.lower() in ("off", "none", ""):
        return None
    terms = []
    for part in s.split(","):
        m = _TERM.match(part)
        if m is None:
            raise NpucError(f"--accuracy: cannot read '{part.strip()}'; write e.g. "
                            "'answer<=1%', 'argmax<=1%', 'ctc<=0%', 'sqnr>=30' or "
                            "'cosine>=0.999'")
        measure, axis, op, value, pct = m.groups()
        if op != _OPS[measure]:
            raise NpucError(f"--accuracy: '{part.strip()}': {measure} takes {_OPS[measure]}")
        v = float(value)
        if measure in ANSWERS:
            v = v / 100 if pct else v
            if not 0 <= v <= 1:
                raise NpucError(f"--accuracy: '{part.strip()}': a share between 0% and 100%")
        elif pct:
            raise NpucError(f"--accuracy: '{part.strip()}': {measure} is not a percentage")
        if axis is not None and measure not in ANSWERS:
            raise NpucError(f"--accuracy: '{part.strip()}': only answer, argmax and ctc "
                            "take an axis")
        terms.append(Term(measure, v, int(axis) if axis is not None else -1))
    return Requirement(tuple(terms))

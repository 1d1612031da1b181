"""String operators. Strings are numpy object arrays of Python ``str``."""

from __future__ import annotations

import re

import numpy as np

from npuc.ir.errors import NpucError, UnsupportedError

from . import kernel


def _strings(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=object)


@kernel("StringNormalizer")
def string_normalizer(inputs, attrs, ctx):
    """ONNX StringNormalizer: drop stopwords, then change case.

    The input is ``[C]`` or ``[1, C]``; when every word is dropped the output is one
    empty string, as the specification says.
    """
    x = _strings(inputs[0])
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[0] != 1):
        raise NpucError(f"{ctx.describe()}: input must be [C] or [1, C], got {list(x.shape)}")
    action = attrs.get("case_change_action", "NONE")
    if action not in ("NONE", "LOWER", "UPPER"):
        raise NpucError(f"{ctx.describe()}: unknown case_change_action {action!r}")
    sensitive = attrs.get("is_case_sensitive", 0)
    stops = attrs.get("stopwords", [])
    if sensitive:
        stop = set(stops)
        words = [w for w in x.reshape(-1) if w not in stop]
    else:
        stop = {s.lower() for s in stops}
        words = [w for w in x.reshape(-1) if w.lower() not in stop]
    if action == "LOWER":
        words = [w.lower() for w in words]
    elif action == "UPPER":
        words = [w.upper() for w in words]
    if not words:
        words = [""]
    out = np.array(words, dtype=object)
    return [out.reshape(1, -1) if x.ndim == 2 else out]


@kernel("StringConcat")
def string_concat(inputs, attrs, ctx):
    """ONNX StringConcat (broadcasting)."""
    a, b = (_strings(v) for v in inputs)
    try:
        return [np.asarray(a + b, dtype=object)]
    except ValueError as e:
        raise NpucError(f"{ctx.describe()}: shapes {a.shape} and {b.shape} do not "
                        "broadcast") from e


@kernel("StringSplit")
def string_split(inputs, attrs, ctx):
    """ONNX StringSplit: substrings padded with "" to the longest split, and their counts."""
    x = _strings(inputs[0])
    delimiter = attrs.get("delimiter") or None
    maxsplit = attrs.get("maxsplit", -1)
    parts = [s.split(delimiter, maxsplit) for s in x.reshape(-1)]
    counts = np.array([len(p) for p in parts], dtype=np.int64).reshape(x.shape)
    width = max((len(p) for p in parts), default=0)
    out = np.full((len(parts), width), "", dtype=object)
    for i, p in enumerate(parts):
        out[i, : len(p)] = p
    return [out.reshape(x.shape + (width,)), counts]


@kernel("RegexFullMatch")
def regex_full_match(inputs, attrs, ctx):
    """ONNX RegexFullMatch (Python's ``re`` syntax, close to RE2 for common patterns)."""
    try:
        pattern = re.compile(attrs.get("pattern", ""))
    except re.error as e:
        raise UnsupportedError(f"{ctx.describe()}: pattern is not supported: {e}") from e
    x = _strings(inputs[0])
    flat = [pattern.fullmatch(s) is not None for s in x.reshape(-1)]
    return [np.array(flat, dtype=bool).reshape(x.shape)]

"""String operators. Strings are numpy object arrays of Python ``str``."""

from __future__ import annotations

import re
from itertools import pairwise

import numpy as np

from npuc.ir.errors import NpucError, UnsupportedError

from .checks import checked_kernel


def _strings(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=object)


@checked_kernel("StringNormalizer")
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


@checked_kernel("StringConcat")
def string_concat(inputs, attrs, ctx):
    """ONNX StringConcat (broadcasting)."""
    a, b = (_strings(v) for v in inputs)
    try:
        return [np.asarray(a + b, dtype=object)]
    except ValueError as e:
        raise NpucError(f"{ctx.describe()}: shapes {a.shape} and {b.shape} do not "
                        "broadcast") from e


@checked_kernel("StringSplit")
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


@checked_kernel("RegexFullMatch")
def regex_full_match(inputs, attrs, ctx):
    """ONNX RegexFullMatch (Python's ``re`` syntax, close to RE2 for common patterns)."""
    try:
        pattern = re.compile(attrs.get("pattern", ""))
    except re.error as e:
        raise UnsupportedError(f"{ctx.describe()}: pattern is not supported: {e}") from e
    x = _strings(inputs[0])
    flat = [pattern.fullmatch(s) is not None for s in x.reshape(-1)]
    return [np.array(flat, dtype=bool).reshape(x.shape)]


def _ngram_table(attrs) -> dict[tuple, int]:
    """Pool n-grams (as tuples) to their output column."""
    pool = attrs.get("pool_int64s")
    pool = list(attrs.get("pool_strings", [])) if pool is None else [int(v) for v in pool]
    starts = list(attrs.get("ngram_counts", [])) + [len(pool)]
    indexes = list(attrs.get("ngram_indexes", []))
    table, k = {}, 0
    for n, (lo, hi) in enumerate(pairwise(starts), start=1):
        for i in range(lo, hi, n):
            table[tuple(pool[i:i + n])] = indexes[k]
            k += 1
    return table


@checked_kernel("TfIdfVectorizer")
def tfidf_vectorizer(inputs, attrs, ctx):
    """ONNX TfIdfVectorizer: counts of pool n-grams (with skips) per row, TF/IDF/TFIDF."""
    x = inputs[0]
    rows = x.reshape(1, -1) if x.ndim <= 1 else x
    if rows.ndim != 2:
        raise NpucError(f"{ctx.describe()}: input must be [C] or [N, C]")
    table = _ngram_table(attrs)
    lo, hi = attrs["min_gram_length"], attrs["max_gram_length"]
    max_skip = attrs["max_skip_count"]
    width = max(attrs["ngram_indexes"]) + 1
    counts = np.zeros((rows.shape[0], width), dtype=np.float32)
    for r, row in enumerate(rows.tolist()):
        c = len(row)
        for n in range(lo, hi + 1):
            # Unigrams are not affected by the skip distance: count them once.
            for d in range(1, (1 if n == 1 else max_skip + 1) + 1):
                for s in range(c - d * (n - 1)):
                    col = table.get(tuple(row[s:s + d * (n - 1) + 1:d]))
                    if col is not None:
                        counts[r, col] += 1
    mode = attrs.get("mode", "TF")
    weights = attrs.get("weights")
    if mode == "IDF":
        counts = (counts > 0).astype(np.float32)
    if mode in ("IDF", "TFIDF") and weights is not None and len(weights):
        counts = counts * np.asarray(weights, dtype=np.float32)
    elif mode not in ("TF", "IDF", "TFIDF"):
        raise NpucError(f"{ctx.describe()}: unknown mode {mode!r}")
    return [counts.reshape(width) if x.ndim <= 1 else counts]


def _attr_list(attrs, names):
    for name in names:
        if name in attrs:
            v = attrs[name]
            return np.asarray(v) if isinstance(v, np.ndarray) else v, name
    return None, None


@checked_kernel("LabelEncoder", domain="ai.onnx.ml")
def label_encoder(inputs, attrs, ctx):
    """ONNX-ML LabelEncoder: map each element through parallel key and value lists."""
    keys, _ = _attr_list(attrs, ("keys_tensor", "keys_int64s", "keys_floats", "keys_strings"))
    values, vname = _attr_list(attrs, ("values_tensor", "values_int64s", "values_floats",
                                       "values_strings"))
    if keys is None or values is None:
        raise UnsupportedError(f"{ctx.describe()}: LabelEncoder without keys_* and values_* "
                               "is not supported")
    out_dtype = {"values_int64s": np.dtype(np.int64), "values_floats": np.dtype(np.float32),
                 "values_strings": np.dtype(object)}.get(vname)
    if out_dtype is None:
        out_dtype = np.asarray(values).dtype
    if "default_tensor" in attrs:
        default = np.asarray(attrs["default_tensor"]).reshape(-1)[0]
    elif out_dtype == object:
        default = attrs.get("default_string", "_Unused")
    elif out_dtype.kind == "f":
        default = attrs.get("default_float", -0.0)
    else:
        default = attrs.get("default_int64", -1)
    table = dict(zip(np.asarray(keys).tolist(), np.asarray(values).tolist()))
    x = inputs[0]
    flat = [table.get(v, default) for v in x.reshape(-1).tolist()]
    return [np.array(flat, dtype=out_dtype).reshape(x.shape)]

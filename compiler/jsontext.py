"""The indented JSON text of artifact files, made faster than :mod:`json` makes it.

``json.dumps(data, indent=1, sort_keys=True)`` is how every artifact's JSON is written
(sorted keys, one value per line: the same data gives the same bytes). With an indent,
the standard library encodes in pure Python, a generator per container, which takes a
few hundred milliseconds on a program of a few megabytes. :func:`dumps` gives the same
text: each container's items are made by one recursive function and joined in one
call, JSON's scalars found by their exact type. Anything
else than JSON's own types (which the standard library would refuse or convert) goes
back to :func:`json.dumps`, so the text is always the standard library's.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _quote

_INF = float("inf")


class _Other(Exception):
    """A value the fast path leaves to the standard library."""


def dumps(data) -> str:
    """``json.dumps(data, indent=1, sort_keys=True)``: the same text."""
    try:
        return _text(data, "\n")
    except (_Other, RecursionError):
        return json.dumps(data, indent=1, sort_keys=True)


def _float(x: float) -> str:
    if x != x:
        return "NaN"
    if x == _INF:
        return "Infinity"
    if x == -_INF:
        return "-Infinity"
    return float.__repr__(x)


# JSON's own scalar types, by exact type (a subclass, such as numpy's float64 or an
# IntEnum, takes the standard library's isinstance order in _other)
_FAST = {str: _quote, int: int.__repr__, float: _float,
         bool: lambda b: "true" if b else "false", type(None): lambda _: "null"}


def _text(o, indent: str) -> str:
    """The text of ``o``, whose line starts with ``indent`` (a newline and the spaces of
    its level)."""
    f = _FAST.get(type(o))
    return f(o) if f is not None else _other(o, indent)


def _other(o, indent: str) -> str:
    if isinstance(o, str):
        return _quote(o)
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return _float(o)
    if isinstance(o, (list, tuple)):
        return _list(o, indent)
    if isinstance(o, dict):
        return _dict(o, indent)
    raise _Other


def _list(items, indent: str) -> str:
    if not items:
        return "[]"
    inner = indent + " "
    fast = _FAST
    parts = [f(v) if (f := fast.get(type(v))) is not None else _other(v, inner)
             for v in items]
    return "[" + inner + ("," + inner).join(parts) + indent + "]"


def _key(k) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, float):
        return _float(k)
    if k is True:
        return "true"
    if k is False:
        return "false"
    if k is None:
        return "null"
    if isinstance(k, int):
        return int.__repr__(k)
    raise _Other


def _dict(d: dict, indent: str) -> str:
    if not d:
        return "{}"
    inner = indent + " "
    fast = _FAST
    parts = []
    for k, v in sorted(d.items()):
        f = fast.get(type(v))
        parts.append(_quote(k if type(k) is str else _key(k)) + ": " +
                     (f(v) if f is not None else _other(v, inner)))
    return "{" + inner + ("," + inner).join(parts) + indent + "}"

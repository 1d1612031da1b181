"""How the text format spells names and numbers; the types spell themselves with these.

Every number prints in the shortest form that reads back to the same bits at its
precision, so ``print(parse(text)) == text`` byte for byte.
"""

from __future__ import annotations

import json
import re

import numpy as np

_SIMPLE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.:/\-]*[A-Za-z0-9_])?$")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEYWORDS = {"true", "false", "nan", "inf", "blob", "graph", "return", "const", "opset",
            "tensor", "type", "seq", "opt", "npuir", "blobs"}


def quote_name(name: str) -> str:
    """A value or node name: bare when simple, else a JSON string."""
    return name if _SIMPLE.match(name) else json.dumps(name)


def quote_ident(name: str) -> str:
    """A graph, attribute or dimension name: bare when an identifier, else a JSON string."""
    return name if IDENT.match(name) and name not in KEYWORDS else json.dumps(name)


def format_dim(d) -> str:
    """A dimension: its size, its symbol, or ``?`` when unknown."""
    if d is None:
        return "?"
    if isinstance(d, int):
        return str(d)
    return quote_ident(d)


def format_float(x: float, dt_name: str = "f32") -> str:
    """Shortest text that reads back to the same value at ``dt_name`` precision."""
    x = float(x)
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    if dt_name == "f64":
        text = repr(x)
    elif dt_name == "f16":
        text = str(np.float16(x))
    else:
        text = str(np.float32(x))
    if not any(c in text for c in ".en"):
        text += ".0"
    return text


def format_scalar(x, dt_name: str) -> str:
    """One element of a tensor of element type ``dt_name``."""
    if dt_name == "str":
        return json.dumps(x if isinstance(x, str) else x.decode("utf-8", "replace"))
    if dt_name == "bool":
        return "true" if bool(x) else "false"
    if dt_name.startswith(("f", "bf")):
        return format_float(float(np.float32(x)) if dt_name not in ("f64",) else float(x),
                            dt_name)
    if dt_name.startswith("c"):
        return json.dumps(repr(complex(x)))
    return str(int(x))


def format_values(a: np.ndarray, dt_name: str) -> str:
    """A small array inline: a scalar, or ``[x, y, ...]`` flattened."""
    if a.ndim == 0:
        return format_scalar(a.item() if dt_name != "bf16" else a, dt_name)
    return "[" + ", ".join(format_scalar(x, dt_name) for x in a.reshape(-1)) + "]"

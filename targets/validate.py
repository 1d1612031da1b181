"""Strict validation of a parsed chip file against :data:`npuc.targets.schema.SCHEMA`.

Unknown keys, missing required keys, values of the wrong type and values outside their
choices are all errors; each names the file and the line (found with
:mod:`npuc.targets.toml_lines`), e.g.::

    chips/mychip.toml:12: unknown key 'sram_kib' in [memory]; expected one of: ...
"""

from __future__ import annotations

from npuc.ir.errors import NpucError

from .schema import KIND_NAMES, SCHEMA, Key, Map, Rows, Table
from .toml_lines import line_of


class Where:
    """The file being read and the line of each of its keys, for error messages."""

    def __init__(self, source: str, lines: dict):
        self.source = source
        self.lines = lines

    def error(self, path: tuple, message: str) -> NpucError:
        """An NpucError that starts with ``file:line:`` for the key at ``path``."""
        return NpucError(f"{self.source}:{line_of(self.lines, path)}: {message}")


def table_name(path: tuple) -> str:
    """How messages name the table at ``path``: ``[memory]``, ``[[operators.limit]]``."""
    names = [p for p in path if not isinstance(p, int)]
    if not names:
        return "the top level"
    if path and isinstance(path[-1], int):
        return "[[" + ".".join(names) + "]]"
    return "[" + ".".join(names) + "]"


def _is_kind(value, kind: str) -> bool:
    scalar = (str, int, float, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "scalar":
        return isinstance(value, scalar)
    if kind.endswith("_list"):
        item = {"str_list": "str", "int_list": "int", "scalar_list": "scalar"}[kind]
        return isinstance(value, list) and all(_is_kind(v, item) for v in value)
    if kind == "value":
        return _is_kind(value, "scalar") or _is_kind(value, "scalar_list")
    raise AssertionError(kind)


def _show(value) -> str:
    kind = {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    text = repr(value) if not isinstance(value, (dict, list)) else ""
    return f"{kind} ({text})" if text and len(text) < 40 else kind


def check_key(value, spec: Key, path: tuple, where: Where) -> None:
    """Check one value: its kind, its length, its choices."""
    name = f"'{path[-1]}' in {table_name(path[:-1])}"
    if not _is_kind(value, spec.kind):
        raise where.error(path, f"{name} must be {KIND_NAMES[spec.kind]}, not {_show(value)}")
    _check_range(value, spec, name, path, where)
    if spec.length is not None and len(value) != spec.length:
        raise where.error(path, f"{name} must have {spec.length} elements, not {len(value)}")
    if spec.choices:
        for v in value if isinstance(value, list) else [value]:
            if v not in spec.choices:
                allowed = ", ".join(str(c) for c in spec.choices)
                raise where.error(path, f"{name} must be one of: {allowed}; it is {v!r}")


def _check_range(value, spec: Key, name: str, path: tuple, where: Where) -> None:
    """Numbers are finite; a ``positive`` key's numbers are above 0."""
    import math

    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise where.error(path, f"{name} must be a finite number, not {v}")
        if spec.positive and v <= 0:
            raise where.error(path, f"{name} must be above 0, not {v}")


def check_table(data: dict, spec: Table | Rows, path: tuple, where: Where) -> None:
    """Check a table: no unknown keys, every required key present, each value valid."""
    for key in data:
        if key not in spec.keys:
            expected = ", ".join(spec.keys)
            raise where.error(path + (key,), f"unknown key '{key}' in {table_name(path)}; "
                                             f"expected one of: {expected}")
    for key, sub in spec.keys.items():
        if key not in data:
            if sub.required:
                raise where.error(path, f"missing key '{key}' in {table_name(path)}")
            continue
        check_value(data[key], sub, path + (key,), where)


def check_value(value, spec, path: tuple, where: Where) -> None:
    """Check any value against its spec (a Key, Table, Map or Rows)."""
    if isinstance(spec, Key):
        check_key(value, spec, path, where)
        return
    label = table_name(path + ((0,) if isinstance(spec, Rows) else ()))
    if isinstance(spec, Rows):
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise where.error(path, f"{label} must be an array of tables, not {_show(value)}")
        for i, row in enumerate(value):
            check_table(row, spec, path + (i,), where)
        return
    if not isinstance(value, dict):
        raise where.error(path, f"{label} must be a table, not {_show(value)}")
    if isinstance(spec, Table):
        check_table(value, spec, path, where)
        return
    assert isinstance(spec, Map)
    for key, v in value.items():
        if spec.key_choices and key not in spec.key_choices:
            allowed = ", ".join(spec.key_choices)
            raise where.error(path + (key,), f"unknown key '{key}' in {label}; "
                                             f"expected one of: {allowed}")
        check_key(v, Key(spec.value, "", positive=spec.positive), path + (key,), where)


def validate(data: dict, where: Where) -> None:
    """Check a whole parsed chip file; raise NpucError at the first problem."""
    version = data.get("schema_version")
    if isinstance(version, int) and version != SCHEMA.keys["schema_version"].choices[0]:
        raise where.error(("schema_version",), f"schema_version {version} is not supported "
                                               "by this npuc, which reads version 1")
    check_table(data, SCHEMA, (), where)

"""Reading back what npuc wrote: summary.json, decisions.json, schedule.json, program.json.

A user may edit these files (or hand npuc a folder that only looks like an output). Each
is checked against a small schema before use, so a missing field or a value of the wrong
kind is one line naming the file and the field, never a crash in the code that reads it.

A schema is written as data: a dict of field -> kind, where a kind is a Python type
(``int``, ``float`` meaning any number, ``str``, ``bool``), a nested dict, ``[kind]`` for a
list of that kind, ``None`` for "anything", or a tuple of kinds of which one must match.
"""

from __future__ import annotations

import json
import os
import re

from npuc.ir.errors import NpucError
from npuc.ir.safeio import check_input_file

NUM = float
OPT_INT = (int, type(None))
OPT_NUM = (float, type(None))

TILE = {"axis": OPT_INT, "rows": int, "count": int}
LAYER = {"group": str, "device": str, "nodes": [str], "ops": [str], "estimated_s": NUM,
         "roofline_s": NUM, "macs": NUM, "ops_count": NUM, "intensity": OPT_NUM,
         "dram_bytes": NUM, "bound": (str, type(None)), "utilisation": NUM, "reason": str,
         "tile": (TILE, type(None))}
SUMMARY = {"format": str, "version": int, "target": str, "model": str, "precision": str,
           "estimated_at": str, "estimated_latency_s": NUM, "sram_peak_bytes": int,
           "sram_bytes": int, "dram_traffic_bytes": NUM, "weights_bytes": int, "groups": int,
           "resident_tensors": int, "peak_ops_per_s": NUM, "dram_bandwidth_bytes_per_s": NUM,
           "layers": [LAYER]}
DECISION = {"stage": str, "subject": str, "action": str, "reason": str, "data": dict}
SCHEDULE = {"format": str, "version": int, "target": str, "precision": str,
            "groups": [{"name": str, "device": str, "nodes": [str], "reason": str,
                        "tile": {"axis": OPT_INT, "rows": int, "count": int,
                                 "reason": str}}]}
PROGRAM = {"format": str, "version": int, "target": str, "inputs": dict, "outputs": dict,
           "tensors": dict, "nodes": dict, "commands": [dict],
           "memory": {"sram_capacity": int, "sram_bytes": int, "dram_bytes": int}}

_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               dict: "an object", list: "a list", type(None): "null"}


def _matches(value, kind) -> bool:
    if kind is None:
        return True
    if isinstance(kind, tuple):
        return any(_matches(value, k) for k in kind)
    if kind is type(None):
        return value is None
    if isinstance(kind, dict):
        return isinstance(value, dict)
    if isinstance(kind, list):
        return isinstance(value, list)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _describe(kind) -> str:
    if isinstance(kind, tuple):
        return " or ".join(_describe(k) for k in kind)
    if isinstance(kind, dict):
        return "an object"
    if isinstance(kind, list):
        return "a list"
    return _KIND_NAMES.get(kind, str(kind))


def check(value, schema, where: str, path: str = "") -> None:
    """Raise NpucError ``where: field PATH must be KIND`` at the first mismatch."""
    if not _matches(value, schema):
        raise NpucError(f"{where}: {path or 'the file'} must be {_describe(schema)}")
    if isinstance(schema, tuple):
        kind = next(k for k in schema if _matches(value, k))
        check(value, kind, where, path)
    elif isinstance(schema, dict):
        for key, kind in schema.items():
            sub = f"{path}.{key}" if path else key
            if key not in value:
                raise NpucError(f"{where}: field '{sub}' is missing")
            check(value[key], kind, where, sub)
    elif isinstance(schema, list):
        for i, item in enumerate(value):
            check(item, schema[0], where, f"{path}[{i}]")


def read_json(path: str, schema, fmt: str | None = None):
    """The JSON file at ``path`` checked against ``schema`` (and its ``format`` field)."""
    check_input_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except UnicodeDecodeError:
        raise NpucError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise NpucError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except (OSError, RecursionError) as e:
        raise NpucError(f"{path}: cannot read ({type(e).__name__})") from None
    if fmt is not None and (not isinstance(data, dict) or data.get("format") != fmt):
        raise NpucError(f"{path}: not an npuc {fmt.removeprefix('npuc-')} file (its format "
                        f"field must be \"{fmt}\")")
    check(data, schema, path)
    return data


def load_program(folder: str) -> tuple[dict, bytes]:
    """``(program, weights)`` of an npuc output folder, for the simulator."""
    (program,) = read_output(folder, "program.json")
    path = os.path.join(folder, "weights.bin")
    check_input_file(path)
    with open(path, "rb") as f:
        return program, f.read()


def read_output(folder: str, *names: str) -> list:
    """The named files of an npuc output folder, each checked."""
    if not os.path.isdir(folder):
        raise NpucError(f"{folder}: no such folder")
    schemas = {"summary.json": (SUMMARY, "npuc-summary"), "decisions.json": ([DECISION], None),
               "schedule.json": (SCHEDULE, "npuc-schedule"),
               "program.json": (PROGRAM, "npuc-program")}
    out = []
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise NpucError(f"{folder}: not a folder written by npuc compile ({name} is "
                            "missing)")
        # one program's files, or program i's of a shape-set folder (summary-0.json, ...)
        schema, fmt = schemas[re.sub(r"-\d+(?=\.json$)", "", os.path.basename(name))]
        out.append(read_json(path, schema, fmt))
    return out


def program_files(folder: str, single: dict, *keys: str) -> list[tuple]:
    """The file names ``keys`` of each program in an npuc output folder: from
    ``manifest.json`` when the folder holds one program per shape set, else ``single``'s
    names for the one program (``single``: key -> file name)."""
    manifest = os.path.join(folder, "manifest.json")
    if not os.path.isfile(manifest):
        return [tuple(single[k] for k in keys)]
    try:
        with open(manifest, encoding="utf-8") as f:
            return [tuple(p[k] for k in keys) for p in json.load(f)["programs"]]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise NpucError(f"{manifest}: not an npuc manifest ({e})") from None

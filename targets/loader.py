"""Read a chip file: TOML text -> strict validation -> :class:`~npuc.targets.model.Target`.

Three layers of checks, each error naming the file and line:

1. TOML syntax and duplicated keys or tables (``tomllib`` finds these; its message is
   rewritten into ours);
2. the schema: unknown keys, missing keys, wrong types (:mod:`npuc.targets.validate`);
3. the file's own consistency: a limit on an operator that is not supported, a preferred
   precision without a peak, an estimate without its assumption.
"""

from __future__ import annotations

import re
from pathlib import Path

from npuc.ir.errors import NpucError

from .constraints import select_check
from .model import (
    ComputeUnit,
    Fusion,
    Layout,
    Limit,
    Link,
    Memory,
    OpRule,
    QuantRules,
    Target,
    frozen_map,
)
from .toml_lines import key_lines
from .validate import Where, validate

_AT = re.compile(r"^(.*) \(at (?:line (\d+), column \d+|end of document)\)$")
_DECLARE = re.compile(r"^Cannot declare \((.*)\) twice$")


def _toml_error(exc: Exception, text: str, source: str) -> NpucError:
    """Rewrite a ``tomllib`` error as ``file:line: message``."""
    m = _AT.match(str(exc))
    message, line = (m.group(1), m.group(2)) if m else (str(exc), None)
    line = line or str(text.count("\n") + 1)
    d = _DECLARE.match(message)
    if d:
        names = [p.strip().strip("'\"") for p in d.group(1).split(",") if p.strip()]
        message = f"duplicated table [{'.'.join(names)}]"
    elif message == "Cannot overwrite a value" or message.startswith("Duplicate inline"):
        written = text.splitlines()[int(line) - 1] if int(line) <= len(text.splitlines()) else ""
        key = written.split("=")[0].strip() if "=" in written else "?"
        if message.startswith("Duplicate inline"):
            key = message.split("'")[1]
        message = f"duplicated key '{key}'"
    else:
        message = f"not valid TOML: {message[:1].lower()}{message[1:]}"
    return NpucError(f"{source}:{line}: {message}")


def parse_target(text: str, source: str = "<string>") -> Target:
    """Parse and check the text of a chip file; ``source`` names it in messages."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(exc, text, source) from None
    where = Where(source, key_lines(text))
    validate(data, where)
    return _build(data, where)


def load_target(path) -> Target:
    """Read the chip file at ``path``."""
    from npuc.ir.safeio import check_input_file

    path = Path(path)
    check_input_file(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise NpucError(f"{path}:{line}: not UTF-8 text (a chip file is TOML text)") from None
    except OSError as exc:
        raise NpucError(f"cannot read target file {path}: {exc.strerror}") from None
    return parse_target(text, str(path))


def _limits(ops: dict, supported: set, where: Where) -> dict[str, list[Limit]]:
    by_op: dict[str, list[Limit]] = {}
    for i, row in enumerate(ops.get("limit", [])):
        path = ("operators", "limit", i)
        if row["op"] not in supported:
            raise where.error(path + ("op",), f"a limit names {row['op']}, which is not in "
                                              "operators.supported")
        check, problem = select_check(row)
        if check is None:
            raise where.error(path, problem)
        params = {k: v for k, v in row.items() if k not in ("op", "message")}
        by_op.setdefault(row["op"], []).append(
            Limit(row["op"], check.key, frozen_map(params), row["message"],
                  where.lines.get(path, 0)))
    return by_op


def _operators(data: dict, where: Where) -> tuple[dict[str, OpRule], bool]:
    ops = data["operators"]
    supported = set(ops["supported"])
    all_ops = "*" in supported
    by_op = _limits(ops, supported | ({"*"} if all_ops else set()), where)
    rules = {op: OpRule(op, tuple(by_op.get(op, ()))) for op in ops["supported"] if op != "*"}
    for i, row in enumerate(ops.get("fused", [])):
        if row["base"] not in rules and not all_ops:
            raise where.error(("operators", "fused", i, "base"),
                              f"fused op {row['op']} names base {row['base']}, which is not "
                              "in operators.supported")
        rules[row["op"]] = OpRule(row["op"], tuple(by_op.get(row["base"], ())), row["base"],
                                  row.get("epilogue_attr"))
    for anchor in data["fusion"]["epilogues"]:
        if anchor not in rules and not all_ops:
            raise where.error(("fusion", "epilogues", anchor),
                              f"fusion.epilogues names {anchor}, which is not in "
                              "operators.supported")
    return rules, all_ops


def _exists(data: dict, dotted: str) -> bool:
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _check_estimates(data: dict, where: Where) -> None:
    estimated = data.get("estimated", [])
    assumptions = data.get("assumptions", {})
    for path in estimated:
        if not _exists(data, path):
            raise where.error(("estimated",), f"estimated names '{path}', which is not a key "
                                              "of this file")
        parts = path.split(".")
        if not any(".".join(parts[:n]) in assumptions for n in range(len(parts), 0, -1)):
            raise where.error(("estimated",), f"'{path}' is estimated but [assumptions] has "
                                              "no text for it: say what the estimate assumes")
    for key in assumptions:
        if not any(e == key or e.startswith(key + ".") or key.startswith(e + ".")
                   for e in estimated):
            raise where.error(("assumptions", key), f"[assumptions] explains '{key}', which "
                                                    "is not in estimated")


def _check_precisions(data: dict, where: Where) -> None:
    q, peak = data["quantization"], data["compute"]["peak_ops_per_s"]
    if q["preferred"] not in q["dtypes"]:
        raise where.error(("quantization", "preferred"), f"the preferred precision "
                          f"{q['preferred']} is not in quantization.dtypes")
    for p in q["dtypes"]:
        if p not in peak:
            raise where.error(("compute", "peak_ops_per_s"),
                              f"precision {p} is in quantization.dtypes but has no peak in "
                              "[compute.peak_ops_per_s]")
    for p in q["calibration"]:
        if p not in q["dtypes"]:
            raise where.error(("quantization", "calibration"),
                              f"calibration names {p}, which is not in quantization.dtypes")


def _link(link: dict | None) -> Link | None:
    if link is None:
        return None
    return Link(link["kind"], float(link["bandwidth_bytes_per_s"]), float(link["latency_s"]),
                link["topology"])


def _check_positive(data: dict, where: Where) -> None:
    for table, key in (("link", "bandwidth_bytes_per_s"), ("link", "latency_s"),
                       ("power", "board_watts")):
        value = data.get(table, {}).get(key)
        if value is not None and not value > 0:
            raise where.error((table, key), f"'{key}' in [{table}] must be positive, "
                                            f"not {value}")


def _build(data: dict, where: Where) -> Target:
    _check_precisions(data, where)
    _check_estimates(data, where)
    _check_positive(data, where)
    rules, all_ops = _operators(data, where)
    if data["fusion"].get("max_epilogues", 4) < 0:
        raise where.error(("fusion", "max_epilogues"), "'max_epilogues' in [fusion] must be "
                          f"0 or more, not {data['fusion']['max_epilogues']}")
    c, m, q, f, lay = (data[k] for k in ("compute", "memory", "quantization", "fusion",
                                         "layout"))
    return Target(
        name=data["name"],
        description=data["description"],
        kind=data.get("kind", "npu"),
        source=where.source,
        compute=ComputeUnit(c["units"], tuple(c["mac_array"]), float(c["clock_hz"]),
                            frozen_map({k: float(v) for k, v in c["peak_ops_per_s"].items()}),
                            float(c["vector_elements_per_cycle"])),
        memory=Memory(m["sram_bytes"], m["sram_banks"], m["dram_bytes"],
                      float(m["dram_bandwidth_bytes_per_s"]), m["dma_alignment_bytes"],
                      float(m.get("host_bandwidth_bytes_per_s", 0.0))),
        quant=QuantRules(tuple(q["dtypes"]), q["preferred"], q["weights"],
                         q["weights_symmetric"], q.get("weights_narrow_range", False),
                         q["activations"], tuple(q["calibration"])),
        operators=frozen_map(rules),
        all_operators=all_ops,
        fusion=Fusion(frozen_map({k: tuple(v) for k, v in f["epilogues"].items()}),
                      f["elementwise_chains"], f.get("max_epilogues", 4)),
        layout=Layout(lay["preferred"], lay["channel_alignment"],
                      lay.get("conversion_last_axis_multiple", 1)),
        link=_link(data.get("link")),
        board_watts=float(data["power"]["board_watts"]) if "power" in data else None,
        estimated=tuple(data.get("estimated", ())),
        assumptions=frozen_map(data.get("assumptions", {})),
        schema_version=data["schema_version"],
    )

"""``npuc targets``: list the chips npuc can compile for, or show one.

    npuc targets [--json]
    npuc targets show NAME|PATH [--json]

Figures that are estimates rather than published values are marked with ``~`` in the
table and listed under ``estimated`` in the JSON.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``targets`` command to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "targets", help="list the target chips, or show one",
        description="List the chips npuc compiles for (shipped, from plugins), or show one "
                    "by name or by the path of its .toml file. '~' marks an estimate.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="targets_command", metavar="{show}")
    show = sub.add_parser("show", help="show one target's figures, limits and assumptions")
    show.add_argument("target", metavar="NAME|PATH", help="a target name or a .toml file")
    # SUPPRESS keeps `npuc targets --json show x` from being reset by the subparser
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                      help="print JSON")
    return parser


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:g} {prefix}{unit}"
    return f"{value:g} {unit}"


def _binary(value: int) -> str:
    for factor, prefix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if value >= factor:
            return f"{value / factor:g} {prefix}"
    return f"{value} B"


def _mark(target, path: str, text: str) -> str:
    return f"~{text}" if target.is_estimated(path) else text


def _peak(target) -> str:
    return ", ".join(_mark(target, f"compute.peak_ops_per_s.{p}", f"{p} {_si(v, 'OPS')}")
                     for p, v in target.compute.peak_ops_per_s.items())


def _table(targets) -> str:
    rows = [("name", "peak", "SRAM", "DRAM", "bandwidth")]
    for t in targets:
        m = t.memory
        rows.append((t.name, _peak(t), _mark(t, "memory.sram_bytes", _binary(m.sram_bytes)),
                     _mark(t, "memory.dram_bytes", _binary(m.dram_bytes)),
                     _mark(t, "memory.dram_bandwidth_bytes_per_s",
                           _si(m.dram_bandwidth_bytes_per_s, "B/s"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n~ marks an estimate; `npuc targets show NAME` gives why."


def _show(t) -> str:
    c, m, q = t.compute, t.memory, t.quant
    mac_array = "x".join(map(str, c.mac_array))
    bandwidth = _si(m.dram_bandwidth_bytes_per_s, "B/s")
    calibration = ", ".join(q.calibration) or "none"
    symmetric = " symmetric" if q.weights_symmetric else ""
    lines = [
        f"{t.name}: {t.description}",
        f"  source      {t.source}",
        f"  peak        {_peak(t)}",
        (f"  compute     {_mark(t, 'compute.units', str(c.units))} units x "
         f"{_mark(t, 'compute.mac_array', mac_array)} MACs at "
         f"{_mark(t, 'compute.clock_hz', _si(c.clock_hz, 'Hz'))}"),
        (f"  SRAM        {_mark(t, 'memory.sram_bytes', _binary(m.sram_bytes))} in "
         f"{m.sram_banks} banks"),
        (f"  DRAM        {_mark(t, 'memory.dram_bytes', _binary(m.dram_bytes))} at "
         f"{_mark(t, 'memory.dram_bandwidth_bytes_per_s', bandwidth)}, "
         f"DMA alignment {m.dma_alignment_bytes} B"),
        (f"  precisions  {', '.join(q.dtypes)} (preferred {q.preferred}; "
         f"calibration for {calibration})"),
        f"  quantize    weights {q.weights}{symmetric}, activations {q.activations}",
        (f"  layout      {t.layout.preferred}, channels aligned to "
         f"{t.layout.channel_alignment}"),
    ]
    ops = ["all"] if t.all_operators else sorted(t.operators)
    lines.append(f"  operators   {', '.join(ops)}")
    limits = [lim for rule in t.operators.values() if rule.base is None for lim in rule.limits]
    if limits:
        lines.append("  limits")
        lines += [f"    {lim.op}: {lim.message}" for lim in limits]
    if t.estimated:
        lines.append("  estimates")
        lines += [f"    {path}: {t.assumption(path)}" for path in t.estimated]
    return "\n".join(lines)


def run(args) -> int:
    """Run ``npuc targets``; returns the exit code."""
    import json

    from npuc.targets.registry import get_target, list_targets
    from npuc.targets.summary import target_summary

    if getattr(args, "targets_command", None) == "show":
        target = get_target(args.target)
        print(json.dumps(target_summary(target), indent=2) if args.json else _show(target))
        return 0
    targets = list_targets()
    if args.json:
        print(json.dumps([target_summary(t) for t in targets], indent=2))
    else:
        print(_table(targets))
    return 0

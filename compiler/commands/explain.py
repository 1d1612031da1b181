"""``npuc explain MODEL|DIR --target T``: per node, where it runs, its group and tile, and why."""

from __future__ import annotations

import os


def add_parser(sub):
    p = sub.add_parser("explain", help="say where each node runs, how it is fused and tiled, "
                                       "and why",
                       description="For each node: NPU or CPU and why, its fusion group, its "
                                   "tile and why. MODEL is compiled (in memory); a DIR written "
                                   "by npuc compile is read instead.")
    p.add_argument("model", metavar="MODEL|DIR")
    p.add_argument("--target", "-t", metavar="T", help="the chip (needed for a MODEL)")
    p.add_argument("-O", dest="opt_level", type=int, default=2, choices=[0, 1, 2, 3],
                   metavar="N")
    p.add_argument("--quantize", default="auto",
                   choices=("auto", "int8", "fp8", "bf16", "fp16", "none"))
    p.add_argument("--calibration", metavar="PATH|random:N")
    p.add_argument("--node", metavar="NAME", help="only this node")
    from .options import add_shape_option

    add_shape_option(p)
    return p


def explain_lines(schedule: dict, decisions: list, only: str | None = None) -> list[str]:
    """The explanation, from a schedule file's content and the decision log."""
    where = {d["subject"]: d for d in decisions if d["stage"] == "partition"}
    refused = {}
    for d in decisions:
        if d["stage"] == "fusion" and d["action"] == "not fused":
            refused.setdefault(d["subject"], d["reason"])
    kept = {d["subject"]: d["reason"] for d in decisions  # contrib ops not rewritten
            if d["stage"] == "expand-contrib" and d["action"] == "kept"}
    lines = [f"target {schedule['target']}, estimated at {schedule['precision']}"]
    for g in schedule["groups"]:
        tile = g["tile"]
        tile_text = "one tile" if tile["axis"] is None else \
            f"{tile['count']} tiles of {tile['rows']} along axis {tile['axis']}"
        for name in g["nodes"]:
            if only and name != only:
                continue
            p = where.get(name)
            op = p["data"].get("op", "") if p else ""
            lines.append(f"{name} ({op})" if op else name)
            if g["device"] == "npu":
                lines.append(f"  runs on: NPU - {p['reason'] if p else ''}")
            else:
                # a node the chip supports may still run on the CPU for its group's sake
                why = g["reason"] if p is None or p["action"] == "npu" else p["reason"]
                lines.append(f"  runs on: CPU - {why}")
            others = [n for n in g["nodes"] if n != name]
            with_ = f" with {', '.join(others)}" if others else " alone"
            lines.append(f"  group:   {g['name']}{with_} - {g['reason']}")
            if name in refused:
                lines.append(f"  not fused with the node before: {refused[name]}")
            if name in kept:
                lines.append(f"  kept:    {kept[name]}")
            if g["device"] == "npu" and name == g["nodes"][0]:
                lines.append(f"  tile:    {tile_text} - {tile['reason']}")
    if only and len(lines) == 1:
        from npuc.ir.errors import NpucError

        raise NpucError(f"no node named {only!r}")
    return lines


def _read_folder(path: str) -> list[tuple]:
    """``(shape set or None, schedule, decisions)`` per program of a compiled folder."""
    from npuc.compiler.readback import program_files, read_output

    parts = program_files(path, {"shapes": None, "schedule": "schedule.json",
                                 "decisions": "decisions.json"},
                          "shapes", "schedule", "decisions")
    return [(title, *read_output(path, schedule, decisions))
            for title, schedule, decisions in parts]


def run(args) -> int:
    import json

    from npuc.ir.errors import NpucError

    if os.path.isdir(args.model):
        programs = _read_folder(args.model)
    else:
        if not args.target:
            raise NpucError("--target is needed to explain a model")
        from npuc.compiler.driver import compile

        r = compile(args.model, args.target, opt_level=args.opt_level, quantize=args.quantize,
                    calibration=args.calibration, shapes=args.shape)
        programs = [(label, json.loads(c.files["schedule.json"]),
                     json.loads(c.files["decisions.json"]))
                    for label, c in zip(getattr(r, "labels", [None]),
                                        getattr(r, "results", [r]))]
    for title, schedule, decisions in programs:
        if title:
            print(f"== program for {title}")
        for line in explain_lines(schedule, decisions, args.node):
            print(line)
    return 0

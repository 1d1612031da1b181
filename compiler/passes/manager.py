"""The pass manager: pipelines from text or a level, run with instruments.

A pipeline is a comma-separated list of pass names, each optionally followed by options
in braces: ``"canonicalize,fold-constants{max-elements=4096},dce"``.

Levels, the pipelines behind ``-O0`` to ``-O3``:

- ``-O0``: nothing.
- ``-O1``: onnxruntime's contrib operators rewritten as ONNX and npuc operators, then
  clean-ups: canonicalize, constant folding, common subexpressions, dead code.
- ``-O2``: ``-O1``, then the rewrites an NPU wants: Pad folded into its consumer,
  BatchNorm folded into Conv and Gemm, GELU, LayerNorm and attention recognized,
  transposes sunk and cancelled, bias and activation epilogues fused into ``npuc`` ops.
- ``-O3``: ``-O2`` with no size limit on constant folding, repeated until nothing changes.

Instruments (all off by default): time per pass, print the IR after one pass or all,
dump every stage to a folder as numbered text IR files, verify after every pass.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from npuc.ir.errors import NpucError, VerifyError
from npuc.ir.graph import Graph

from .base import Pass, make_pass

CLEANUP = "canonicalize,fold-constants,cse,dce"
LEVELS = {
    0: "",
    1: f"expand-contrib,{CLEANUP}",
    2: f"expand-contrib,{CLEANUP},infer-shapes,fuse-pad,fuse-conv-bn,fuse-gelu,fuse-layernorm,"
       "fuse-attention,sink-transposes,canonicalize,infer-shapes,fuse-epilogue,cse,dce",
    3: f"expand-contrib,fold-constants{{max-elements=-1}},{CLEANUP},infer-shapes,fuse-pad,fuse-conv-bn,"
       "fuse-gelu,fuse-layernorm,fuse-attention,sink-transposes,canonicalize,"
       "fuse-epilogue,cse,dce",
}
_ITEM = re.compile(r"\s*([A-Za-z0-9_\-]+)\s*(?:\{([^}]*)\})?\s*(?:,|$)")


def parse_pipeline(text: str) -> list[Pass]:
    """The passes of a pipeline string (unknown names are errors listing close ones)."""
    passes, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise NpucError(f"cannot read the pipeline at '{text[pos:pos + 20]}'; write "
                            "names separated by commas, options as name{key=value}")
        options = {}
        for item in filter(None, (x.strip() for x in (m.group(2) or "").split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise NpucError(f"pass '{m.group(1)}': option '{item}' needs a value "
                                "(key=value)")
            options[key.strip()] = value.strip()
        passes.append(make_pass(m.group(1), options))
        pos = m.end()
    return passes


def level_pipeline(level: int) -> list[Pass]:
    if level not in LEVELS:
        raise NpucError(f"unknown optimization level -O{level}; use -O0 to -O3")
    return parse_pipeline(LEVELS[level])


@dataclass
class PassTiming:
    name: str
    seconds: float
    nodes_before: int
    nodes_after: int


@dataclass
class PassManager:
    """Runs passes in order; the fields are the instruments."""

    passes: list[Pass]
    verify: bool = False
    timing: bool = False
    print_after: set[str] | str | None = None  # pass names, or "all"
    dump_dir: str | None = None
    repeat_until_stable: bool = False
    out: TextIO = field(default_factory=lambda: sys.stderr)
    timings: list[PassTiming] = field(default_factory=list)

    def run(self, graph: Graph) -> Graph:
        # Nodes and values point at each other, so every rewrite makes reference cycles;
        # the cyclic collector would rescan the whole graph again and again, which made
        # the pipeline superlinear. Nothing here needs it until the passes are done.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._stage = 0
            self._dump(graph, "input")
            for _round in range(8 if self.repeat_until_stable else 1):
                changed = False
                for p in self.passes:
                    changed |= bool(self._run_one(p, graph))
                if not changed:
                    break
        finally:
            if collecting:
                gc.enable()
        if self.timing:
            self.report_timing()
        return graph

    def _run_one(self, p: Pass, graph: Graph) -> bool | None:
        before = len(graph)
        t0 = time.perf_counter()
        changed = p.run(graph)
        seconds = time.perf_counter() - t0
        self.timings.append(PassTiming(p.name, seconds, before, len(graph)))
        if self.verify:
            from npuc.ir.verifier import verify

            try:
                verify(graph)
            except VerifyError as e:
                raise VerifyError(f"after pass {p}: {e}") from None
        if self.print_after == "all" or (self.print_after and p.name in self.print_after):
            from npuc.ir.printer import print_graph

            self.out.write(f"// -----// IR after {p} //----- //\n{print_graph(graph)}")
        self._dump(graph, p.name)
        return changed if changed is not None else len(graph) != before

    def _dump(self, graph: Graph, label: str) -> None:
        if not self.dump_dir:
            return
        from npuc.ir.parser import save_text

        os.makedirs(self.dump_dir, exist_ok=True)
        save_text(graph, os.path.join(self.dump_dir, f"{self._stage:02d}-{label}.npuir"))
        self._stage += 1

    def report_timing(self) -> None:
        total = sum(t.seconds for t in self.timings) or 1e-12
        self.out.write(f"{'pass':<22}{'ms':>10}{'%':>7}{'nodes':>14}\n")
        for t in self.timings:
            self.out.write(f"{t.name:<22}{t.seconds * 1e3:>10.2f}{100 * t.seconds / total:>7.1f}"
                           f"{t.nodes_before:>7}->{t.nodes_after:<6}\n")
        self.out.write(f"{'total':<22}{total * 1e3:>10.2f}\n")


def optimize(graph: Graph, level: int | None = None, passes: str | list[Pass] | None = None,
             verify: bool = False, copy: bool = True, **instruments) -> Graph:
    """An optimized graph: ``optimize(g, level=2)`` or ``optimize(g, passes="cse,dce")``.

    The input graph is left alone unless ``copy=False``. ``instruments`` are the
    :class:`PassManager` fields (``timing``, ``print_after``, ``dump_dir``).
    """
    if passes is not None and level is not None:
        raise NpucError("give a level or a list of passes, not both")
    if passes is None:
        pipeline = level_pipeline(2 if level is None else level)
        instruments.setdefault("repeat_until_stable", level == 3)
    else:
        pipeline = parse_pipeline(passes) if isinstance(passes, str) else list(passes)
    graph = graph.copy() if copy else graph
    return PassManager(pipeline, verify=verify, **instruments).run(graph)

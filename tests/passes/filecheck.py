"""A tiny FileCheck: CHECK, CHECK-NEXT and CHECK-NOT lines against a tool's output.

- ``# CHECK: text`` finds ``text`` on a line after the previous match;
- ``# CHECK-NEXT: text`` finds it on the line right after the previous match;
- ``# CHECK-NOT: text`` says ``text`` appears nowhere between the previous match and the
  next one (or the end).
Text is matched as a substring, with runs of spaces treated as one; ``{{regex}}``
inside it matches a regular expression, as in LLVM's FileCheck.
"""

from __future__ import annotations

import re


def directives(source: str) -> list[tuple[str, str]]:
    found = []
    for line in source.splitlines():
        m = re.match(r"\s*#\s*(CHECK(?:-NEXT|-NOT)?):\s?(.*)$", line)
        if m:
            found.append((m.group(1), m.group(2).strip()))
    return found


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def _finder(want: str):
    parts = re.split(r"\{\{(.*?)\}\}", want)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?:{p})" for i, p in enumerate(parts))
    compiled = re.compile(regex)
    return lambda line: compiled.search(line) is not None


def check(output: str, checks: list[tuple[str, str]]) -> None:
    """Raise AssertionError naming the first directive that fails."""
    lines = [_norm(x) for x in output.splitlines()]
    pos = 0  # the next line a CHECK may match
    last = -1
    pending_not: list[str] = []
    for kind, text in checks:
        want = _norm(text)
        if kind == "CHECK-NOT":
            pending_not.append(want)
            continue
        if kind == "CHECK-NEXT":
            at = last + 1
            if at >= len(lines) or not _finder(want)(lines[at]):
                got = lines[at] if at < len(lines) else "<end of output>"
                raise AssertionError(f"CHECK-NEXT: {text!r} not on the next line; got {got!r}")
        else:
            found = _finder(want)
            at = next((i for i in range(pos, len(lines)) if found(lines[i])), None)
            if at is None:
                raise AssertionError(f"CHECK: {text!r} not found after line {pos}")
        _no(lines, pending_not, pos, at)
        pending_not = []
        last, pos = at, at + 1
    _no(lines, pending_not, pos, len(lines))


def _no(lines, nots, start, end):
    for want in nots:
        found = _finder(want)
        for i in range(start, end):
            if found(lines[i]):
                raise AssertionError(f"CHECK-NOT: {want!r} found on line {i}: {lines[i]!r}")

"""Where each key of a TOML text is written: the line numbers that ``tomllib`` does not give.

``tomllib`` returns plain dicts, so a validator that finds an unknown key or a wrong type
cannot say on which line it is. :func:`key_lines` scans the text once and maps every key
path to the line where it is written:

- ``("memory",)`` is the line of the ``[memory]`` header;
- ``("memory", "sram_bytes")`` is the line of ``sram_bytes = ...`` under it;
- ``("operators", "limit", 2, "max")`` is the ``max`` key of the third ``[[operators.limit]]``;
- keys of inline tables get their own path too (``("peak", "int8")`` for
  ``peak = { int8 = 1 }``), with an index for each inline table inside an array.

The scanner understands strings (so a ``#`` or ``=`` inside quotes is not a comment or a
key), comments, and arrays that span lines. It is used only to point at lines in error
messages, so where a path is not found the caller falls back to the nearest ancestor.
"""

from __future__ import annotations

import re

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(text: str) -> tuple[str, ...] | None:
    """``a."b.c".d`` -> ``("a", "b.c", "d")``; None when ``text`` is not a key."""
    parts, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "\"'":
            quote = text[i]
            end = text.find(quote, i + 1)
            if end < 0:
                return None
            parts.append(text[i + 1:end])
            i = end + 1
        else:
            m = _BARE.match(text, i)
            if not m:
                return None
            parts.append(m.group())
            i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n:
            if text[i] != ".":
                return None
            i += 1
    return tuple(parts) if parts else None


class _Scanner:
    """Walks the text character by character, keeping the bracket context."""

    def __init__(self, text: str):
        self.text = text
        self.lines: dict[tuple, int] = {}
        self.counts: dict[tuple, int] = {}
        self.last_key: tuple = ()

    def record(self, path: tuple, line: int) -> None:
        self.lines.setdefault(path, line)

    def run(self) -> dict[tuple, int]:
        table: tuple = ()
        # stack of open brackets: (kind, path, element index) with kind "[" or "{"
        stack: list[list] = []
        expect_key = True   # at the start of a line (top level) or after "{" / ","
        key_start = 0
        text, i, line = self.text, 0, 1
        while i < len(text):
            c = text[i]
            if c == "\n":
                line += 1
                if not stack:
                    expect_key = True
                    key_start = i + 1
                i += 1
                continue
            if c == "#":
                i = text.find("\n", i)
                i = len(text) if i < 0 else i
                continue
            if c in "\"'":
                triple = text.startswith(c * 3, i)
                delim = c * 3 if triple else c
                j = i + len(delim)
                while j < len(text) and not text.startswith(delim, j):
                    j += 2 if (c == '"' and text[j] == "\\") else 1
                line += text.count("\n", i, j)
                i = j + len(delim)
                continue
            if c == "[" and not stack and expect_key:
                end = text.find("\n", i)
                header = text[i:len(text) if end < 0 else end].split("#")[0].strip()
                is_array = header.startswith("[[")
                name = header[2:-2] if is_array else header[1:-1]
                path = _split_key(name) or ()
                if is_array:
                    index = self.counts.get(path, 0)
                    self.counts[path] = index + 1
                    self.record(path, line)
                    path = path + (index,)
                self.record(path, line)
                table = path
                i = len(text) if end < 0 else end
                continue
            if c == "=" and expect_key:
                key = _split_key(text[key_start:i])
                if key is not None:
                    base = stack[-1][1] if stack else table
                    self.record(base + key, line)
                    self.last_key = base + key
                expect_key = False
                i += 1
                continue
            if c in "[{":
                if stack and stack[-1][0] == "[":
                    path = stack[-1][1] + (stack[-1][2],)
                    self.record(path, line)
                else:
                    path = self.last_key
                stack.append([c, path, 0])
                expect_key = c == "{"
                key_start = i + 1
                i += 1
                continue
            if c in "]}":
                if stack:
                    stack.pop()
                i += 1
                continue
            if c == "," and stack:
                stack[-1][2] += 1
                expect_key = stack[-1][0] == "{"
                key_start = i + 1
            i += 1
        return self.lines


def key_lines(text: str) -> dict[tuple, int]:
    """Map each key path written in ``text`` to its 1-based line number."""
    return _Scanner(text).run()


def line_of(lines: dict[tuple, int], path: tuple) -> int:
    """The line of ``path``, or of its nearest written ancestor, or 1."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return 1

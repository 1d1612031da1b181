"""Golden tests: every ``*.npuir`` file here runs its RUN line and checks the output."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re
import shlex

import pytest

from npuc.compiler.cli import main

from .filecheck import check, directives

HERE = pathlib.Path(__file__).parent
FILES = sorted(HERE.glob("*.npuir"))


def run_line(path: pathlib.Path) -> list[str]:
    m = re.search(r"#\s*RUN:\s*npuc\s+(.*)", path.read_text())
    assert m, f"{path.name} has no '# RUN: npuc ...' line"
    return shlex.split(m.group(1).replace("%s", str(path)))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden(path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(run_line(path) + ["--verify-each"])
    assert code == 0
    check(out.getvalue(), directives(path.read_text()))


def test_every_pass_has_a_golden_test():
    from npuc.compiler.passes import registered

    tested = set()
    for path in FILES:
        args = run_line(path)
        if "-p" in args:
            tested |= {re.sub(r"\{.*", "", p) for p in args[args.index("-p") + 1].split(",")}
    assert set(registered()) - tested == set()


def test_checker_catches_mistakes():
    with pytest.raises(AssertionError):
        check("a\nb\n", [("CHECK", "a"), ("CHECK-NEXT", "c")])
    with pytest.raises(AssertionError):
        check("a\nb\nc\n", [("CHECK", "a"), ("CHECK-NOT", "b"), ("CHECK", "c")])
    check("a\nb\nc\n", [("CHECK", "a"), ("CHECK-NEXT", "b"), ("CHECK-NOT", "a"),
                        ("CHECK", "c")])

"""The example in docs/passes.md works: its pass registers, runs and passes its test."""

from __future__ import annotations

import contextlib
import io
import pathlib
import re

from npuc.compiler.cli import main
from npuc.compiler.passes.base import _REGISTRY

from .filecheck import check, directives

DOC = pathlib.Path(__file__).parents[2] / "docs" / "passes.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


def test_doc_example(tmp_path):
    code = next(b for b in blocks("python") if "@register" in b)
    try:
        exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})
        golden = next(b for b in blocks("npuir") if "# RUN:" in b)
        path = tmp_path / "remove-double-neg.npuir"
        path.write_text(golden)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["opt", str(path), "-p", "remove-double-neg", "--verify-each"]) == 0
        check(out.getvalue(), directives(golden))
    finally:
        _REGISTRY.pop("remove-double-neg", None)

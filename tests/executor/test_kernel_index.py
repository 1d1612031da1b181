"""The kernel index: each operator's kernel found by importing its module alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from npuc.compiler.executor.kernels import KERNELS, get_kernel, load_all
from npuc.compiler.executor.kernels.index import MODULES, module_of

PACKAGE = "npuc.compiler.executor.kernels"


def table_text() -> str:
    """The index's ``MODULES`` as it should read: every kernel the package's modules
    register, by domain and module, in index.py's layout."""
    load_all()
    found: dict = {}
    for (domain, op), fn in sorted(KERNELS.items()):
        module = fn.__module__.rpartition(".")[2]
        if fn.__module__ == f"{PACKAGE}.{module}":
            found.setdefault(domain, {}).setdefault(module, []).append(op)
    lines = ["MODULES = {"]
    for domain in sorted(found):
        lines.append(f'    "{domain}": {{')
        for module, ops in sorted(found[domain].items()):
            head = f'        "{module}": ('
            names = ", ".join(f'"{op}"' for op in ops) + ("," if len(ops) == 1 else "") + "),"
            body = textwrap.wrap(names, 92 - len(head), break_long_words=False,
                                 break_on_hyphens=False)
            lines += [head + body[0]] + [" " * len(head) + b for b in body[1:]]
        lines.append("    },")
    return "\n".join(lines + ["}"])


def test_index_names_the_module_of_every_kernel():
    text = table_text()
    expected: dict = {}
    exec(text, {}, expected)
    assert expected["MODULES"] == MODULES, (
        "compiler/executor/kernels/index.py is out of date; its table should read:\n" + text)
    for (domain, op), fn in KERNELS.items():
        if fn.__module__.startswith(f"{PACKAGE}."):
            assert module_of(op, domain) == fn.__module__.rpartition(".")[2]


def test_the_index_file_reads_as_generated():
    from npuc.compiler.executor.kernels import index

    with open(index.__file__, encoding="utf-8") as f:
        assert table_text() in f.read()


def test_unknown_operators_are_none():
    assert module_of("NoSuchOp") is None
    assert module_of("Gather", "no.such.domain") is None
    assert get_kernel("NoSuchOp") is None


def test_a_bf16_compile_loads_no_numba(tmp_path):
    # Loading folds Gather, Unsqueeze and Concat; their modules need no Numba, and a compile
    # without calibration runs no other node: Numba's import (~0.3 s) is not paid.
    code = ("import sys; from npuc.compiler.cli import main; "
            f"code = main(['compile', 'zoo:bert-tiny', '--target', 'rngd', '-o', r'{tmp_path}/o']); "
            "print(code, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == "0 False", out.stderr

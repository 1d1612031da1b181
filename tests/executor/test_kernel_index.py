"""The kernel index: each operator's kernel found by importing its module alone."""

from __future__ import annotations

import subprocess
import sys

from npuc.compiler.executor.kernels import KERNELS, get_kernel, load_all
from npuc.compiler.executor.kernels.index import MODULES, module_of, table_text


def test_index_names_the_module_of_every_kernel():
    load_all()
    expected: dict = {}
    exec(table_text(), {}, expected)
    assert expected["MODULES"] == MODULES, (
        "the kernel index is out of date: paste the output of "
        "`python -m npuc.compiler.executor.kernels.index` into compiler/executor/kernels/index.py")
    for (domain, op), fn in KERNELS.items():
        if fn.__module__.startswith("npuc.compiler.executor.kernels."):
            assert module_of(op, domain) == fn.__module__.rpartition(".")[2]


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

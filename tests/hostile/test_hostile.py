"""Hostile, malformed and unlucky inputs: each exits 2 with one line naming what is wrong
(or succeeds where it should), within a memory cap and a time limit, and touches no file
outside its output.

All cases run in one subprocess (``tests.hostile.runner``) whose address space is capped,
so that the suite stays fast: npuc is imported once.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from . import cases_inputs, cases_outputs  # noqa: F401  (they register the cases)
from .registry import CASES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    specs = []
    for name, build in CASES.items():
        folder = base / name
        folder.mkdir()
        spec = build(folder)
        spec.update(id=name, root=str(folder), cwd=str(folder),
                    allowed=[str(folder / a) if not a.startswith("/") else a
                             for a in spec.get("allowed", [])])
        specs.append(spec)
    (base / "cases.json").write_text(json.dumps(specs))
    env = {"NPUC_BLAS_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "tests.hostile.runner", str(base / "cases.json"),
                           str(base / "results.json")], cwd=ROOT, env=env, timeout=600,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads((base / "results.json").read_text())
    return {s["id"]: (s, found[s["id"]]) for s in specs}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_case(results, name):
    spec, got = results[name]
    want = spec.get("code", 2)
    assert got["code"] == want, (got["code"], got["stderr"][-2000:])
    assert "Traceback" not in got["stderr"]
    assert not got["changed"], f"files outside the output changed: {got['changed']}"
    if want == 2:
        lines = [line for line in got["stderr"].strip().splitlines()
                 if not line.startswith("npuc: warning: ")]
        assert len(lines) == 1 and lines[0].startswith("npuc: error: "), got["stderr"]
        for word in spec.get("words", []):
            assert word in lines[0], (word, lines[0])
        for word in spec.get("not_words", []):
            assert word not in lines[0], (word, lines[0])
    for name_ in spec.get("check_npz", []):
        with np.load(Path(spec["root"]) / "o.npz") as z:
            assert name_ in z.files
    leftovers = [p for p in Path(spec["root"]).rglob("*") if ".npuc-" in p.name
                 and p.name != ".npuc-output" and not p.is_symlink()
                 and "999999999" not in p.name]
    assert not leftovers, leftovers

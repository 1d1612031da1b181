"""The built wheel holds the whole package and works on its own.

The wheel is unpacked next to the installed dependencies and run with ``python -S``, so
that the editable install of this checkout (a ``.pth`` finder) cannot stand in for it.
"""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_the_package_and_runs(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("npuc-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for required in ["npuc/__init__.py", "npuc/ir/grammar.lark", "npuc/ir/graph.py",
                     "npuc/compiler/cli.py", "npuc/compiler/frontend/onnx_import.py",
                     "npuc/targets/__init__.py", "npuc/compiler/zoo/__init__.py"]:
        assert required in names, required
    entry = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry[0]).decode()
    assert "npuc = npuc.compiler.cli:main" in text
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(unpacked), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    code = ("import npuc, sys; assert npuc.__file__.startswith(sys.argv[1]), npuc.__file__; "
            "from npuc.compiler.cli import main; "
            "sys.exit(main(['convert', 'zoo:resnet-tiny', '-o', sys.argv[2]]))")
    out = tmp_path / "m.npuir"
    r = subprocess.run([sys.executable, "-S", "-c", code, str(unpacked), str(out)],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("npuir 1")

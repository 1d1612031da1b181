"""The built wheel holds the whole package and works on its own.

The wheel is unpacked next to the installed dependencies and run with ``python -S``, so
that the editable install of this checkout (a ``.pth`` finder) cannot stand in for it.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _sources(dest: Path) -> Path:
    """The checkout's files (tracked, and untracked but not ignored) copied to ``dest``:
    pip builds in the folder it is given and leaves its ``build/`` there, which would
    otherwise be the checkout."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"], capture_output=True, check=True).stdout.decode()
        names = [n for n in listed.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        names = []
    if not names:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".git", "build", "benchmarks", "tests", "*.egg-info", "__pycache__"))
        return dest
    for name in names:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_wheel_contains_the_package_and_runs(tmp_path):
    source = _sources(tmp_path / "source")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True)
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

"""Reading a compiled folder back and running it: one program, or the one for the inputs.

A folder written by ``npuc compile`` holds one program (``program.json`` and
``weights.bin``) or, for several shape sets, a ``manifest.json`` naming a program per shape
set, all reading one ``weights.bin``. :func:`simulate_folder` picks the program compiled for
the inputs' shapes and runs it in the command-stream simulator.
"""

from __future__ import annotations

import json
import os

from npuc.ir.errors import NpucError


def load_folder(path: str) -> tuple[list[dict], bytes, dict | None]:
    """``(programs, weight blob, manifest or None)`` of a folder written by npuc compile."""
    def read(name, binary=False):
        full = os.path.join(path, name)
        try:
            with open(full, "rb" if binary else "r", **({} if binary else
                                                        {"encoding": "utf-8"})) as f:
                return f.read() if binary else json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise NpucError(f"{path}: not a folder written by npuc compile ({name}: "
                            f"{getattr(e, 'strerror', None) or e})") from None

    if os.path.isfile(os.path.join(path, "manifest.json")):
        manifest = read("manifest.json")
        programs = [read(p["program"]) for p in manifest["programs"]]
        return programs, read(manifest["weights"], binary=True), manifest
    return [read("program.json")], read("weights.bin", binary=True), None


def simulate_folder(path: str, inputs: dict) -> dict:
    """Run the inputs on the folder's program for their shapes; the outputs by name."""
    import numpy as np

    from npuc.compiler.lower.buckets import pick

    from .simulator import simulate

    programs, blob, _ = load_folder(path)
    feeds = {k: np.asarray(v) for k, v in inputs.items()}
    return simulate(programs[pick(programs, feeds)], blob, feeds)

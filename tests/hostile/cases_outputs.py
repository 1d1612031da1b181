"""Hostile cases about outputs and resources: each builds its files in its own folder
and says what must happen.

A case is a function ``(folder: Path) -> dict`` registered with :func:`case`; the dict has
``argv`` (the npuc command line, run with ``folder`` as the current folder), and
optionally ``code`` (the exit code expected, 2 by default), ``words`` (text the one-line
error must contain), ``allowed`` (paths the command may write; nothing else under the
folder may change), ``env`` and ``fsize`` (a file size limit, to play a full disk).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import models as m
from .registry import case

# -- outputs -----------------------------------------------------------------------------

COMPILE = ["compile", "m.onnx", "--target", "generic-npu", "--quantize", "none"]


@case
def compile_into_the_current_folder(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": COMPILE + ["-o", "."], "words": ["current folder"]}


@case
def compile_into_a_users_folder(d: Path):
    m.tiny(d / "m.onnx")
    (d / "project").mkdir()
    (d / "project" / "notes.txt").write_text("mine")
    return {"argv": COMPILE + ["-o", "project"], "words": ["not an npuc output folder"]}


@case
def compile_into_the_models_folder(d: Path):
    (d / "sub").mkdir()
    m.tiny(d / "sub" / "m.onnx")
    return {"argv": ["compile", "sub/m.onnx", "--target", "generic-npu", "--quantize", "none",
                     "-o", "sub"], "words": ["sub/m.onnx"]}


@case
def compile_over_a_file(d: Path):
    m.tiny(d / "m.onnx")
    (d / "taken").write_text("x")
    return {"argv": COMPILE + ["-o", "taken"], "words": ["not a folder"]}


@case
def compile_under_proc(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": COMPILE + ["-o", "/proc/npuc-out"], "words": ["/proc"]}


@case
def compile_with_schedule_out_in_a_missing_folder(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": COMPILE + ["-o", "out", "--schedule-out", "no/such/s.json"],
            "words": ["no/such/s.json"]}


@case
def compile_again_past_leftovers_of_killed_runs(d: Path):
    m.tiny(d / "m.onnx")
    (d / "out.old-npuc").mkdir()  # left by older npuc versions: the user's now, untouched
    dead = d / ".out.npuc-999999999-x"  # a temporary of a run that was killed
    dead.mkdir()
    (dead / ".npuc-output").write_bytes(b"partial")
    return {"argv": COMPILE + ["-o", "out"], "code": 0,
            "allowed": [str(d / "out"), str(dead)]}


@case
def compile_through_a_symlinked_folder(d: Path):
    m.tiny(d / "m.onnx")
    (d / "real").mkdir()
    (d / "real" / ".npuc-output").write_bytes(
        b"npuc output folder: npuc may replace this folder when asked to write it\n")
    os.symlink("real", d / "link")
    return {"argv": COMPILE + ["-o", "link"], "code": 0, "allowed": [str(d / "real")]}


@case
def run_with_a_planted_temporary_symlink(d: Path):
    m.tiny(d / "m.onnx")
    (d / "victim.txt").write_text("keep me")
    for planted in ("o.npz.tmp.npz", "o.npz.tmp", ".o.npz.npuc-1-x"):
        os.symlink("victim.txt", d / planted)
    return {"argv": ["run", "m.onnx", "-o", "o.npz"], "code": 0, "allowed": [str(d / "o.npz")]}


@case
def run_output_to_a_device(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": ["run", "m.onnx", "-o", "/dev/null"], "words": ["/dev/null"]}


@case
def run_outputs_named_like_savez_arguments(d: Path):
    m.tiny(d / "m.onnx", out="allow_pickle")
    return {"argv": ["run", "m.onnx", "-o", "o.npz"], "code": 0, "allowed": [str(d / "o.npz")],
            "check_npz": ["allow_pickle"]}


@case
def convert_on_a_full_disk(d: Path):
    m.tiny(d / "m.onnx", width=4096)
    return {"argv": ["convert", "m.onnx", "-o", "big.npuir"], "fsize": 4096,
            "words": ["no space left writing"]}


@case
def report_with_a_planted_temporary_symlink(d: Path):
    m.tiny(d / "m.onnx")
    return {"setup": COMPILE + ["-o", "out"], "plant": ("out/report.html.tmp", "victim.txt"),
            "argv": ["report", "out"], "code": 0, "allowed": [str(d / "out")]}


# -- resources ---------------------------------------------------------------------------

@case
def run_constant_of_shape_2_32(d: Path):
    m.sized_by_data(d / "c.onnx", "ConstantOfShape")
    return {"argv": ["run", "c.onnx"], "words": ["c.onnx", "ConstantOfShape", "limit"]}


@case
def convert_constant_of_shape_2_32(d: Path):
    m.sized_by_data(d / "c.onnx", "ConstantOfShape")
    return {"argv": ["convert", "c.onnx", "-o", "c.npuir"], "words": ["limit"]}


@case
def compile_range_2_40(d: Path):
    m.sized_by_data(d / "r.onnx", "Range")
    return {"argv": ["compile", "r.onnx", "--target", "warboy", "-o", "out"],
            "words": ["r.onnx", "Range", "limit"]}


@case
def run_tile_2_30_squared(d: Path):
    m.sized_by_data(d / "t.onnx", "Tile")
    return {"argv": ["run", "t.onnx"], "words": ["Tile", "limit"]}


@case
def compile_folding_a_huge_product(d: Path):
    m.big_fold(d / "f.onnx")
    return {"argv": ["compile", "f.onnx", "--target", "warboy", "-o", "out"],
            "words": ["f.onnx", "MatMul", "multiply-adds"]}


@case
def run_an_endless_loop(d: Path):
    m.endless_loop(d / "l.onnx")
    np.savez(d / "in.npz", x=np.zeros(1, np.float32))
    return {"argv": ["run", "l.onnx", "--inputs", "in.npz", "--max-loop-iterations", "50"],
            "words": ["Loop", "50 iterations"]}


@case
def compile_with_a_huge_batch(d: Path):
    m.tiny(d / "m.onnx", width=8192)
    return {"argv": COMPILE[:-2] + ["--batch", "100000", "-o", "out"], "words": ["limit"]}


@case
def compile_with_random_calibration_too_large(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": COMPILE[:-2] + ["--calibration", "random:100000000000", "-o", "out"],
            "words": ["random:N"]}


@case
def compile_with_random_calibration_zero(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": COMPILE[:-2] + ["--calibration", "random:0", "-o", "out"],
            "words": ["random:N"]}


@case
def quantize_with_random_calibration_negative(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": ["quantize", "m.onnx", "--calibration", "random:-5", "-o", "q.npuir"],
            "words": ["random:N"]}


@case
def run_inputs_declaring_a_huge_array(d: Path):
    m.tiny(d / "m.onnx")
    m.npz_declaring(d / "in.npz", "x", (3 * 2**30,))
    return {"argv": ["run", "m.onnx", "--inputs", "in.npz"], "words": ["in.npz", "limit"]}


@case
def quantize_calibration_declaring_a_huge_array(d: Path):
    m.tiny(d / "m.onnx")
    m.npz_declaring(d / "cal.npz", "x", (2**20, 2**20))
    return {"argv": ["quantize", "m.onnx", "--calibration", "cal.npz", "-o", "q.npuir"],
            "words": ["cal.npz", "limit"]}


@case
def quantize_pickled_calibration(d: Path):
    m.tiny(d / "m.onnx")
    m.pickled_npz(d / "cal.npz", "x")
    return {"argv": ["quantize", "m.onnx", "--calibration", "cal.npz", "-o", "q.npuir"],
            "words": ["cal.npz"]}


@case
def quantize_corrupt_calibration(d: Path):
    m.tiny(d / "m.onnx")
    (d / "cal.npz").write_bytes(b"PK\x03\x04 not really a zip")
    return {"argv": ["quantize", "m.onnx", "--calibration", "cal.npz", "-o", "q.npuir"],
            "words": ["cal.npz"]}


@case
def run_a_fifo_as_model(d: Path):
    os.mkfifo(d / "m.onnx")
    return {"argv": ["run", "m.onnx"], "words": ["m.onnx", "regular file"]}


@case
def compile_with_a_fifo_as_calibration(d: Path):
    m.tiny(d / "m.onnx")
    os.mkfifo(d / "cal.npz")
    return {"argv": COMPILE[:-2] + ["--calibration", "cal.npz", "-o", "out"],
            "words": ["cal.npz", "regular file"]}


@case
def run_a_text_ir_whose_side_file_is_a_fifo(d: Path):
    m.tiny(d / "m.onnx", width=64)
    return {"setup": ["convert", "m.onnx", "-o", "m.npuir"], "fifo": "m.npuir.bin",
            "argv": ["run", "m.npuir"], "words": ["m.npuir.bin", "regular file"]}

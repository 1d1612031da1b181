"""The hostile cases: each builds its files in its own folder and says what must happen.

A case is a function ``(folder: Path) -> dict`` registered with :func:`case`; the dict has
``argv`` (the npuc command line, run with ``folder`` as the current folder), and
optionally ``code`` (the exit code expected, 2 by default), ``words`` (text the one-line
error must contain), ``allowed`` (paths the command may write; nothing else under the
folder may change), ``env`` and ``fsize`` (a file size limit, to play a full disk).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import models as m

CASES: dict = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


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


# -- chip files --------------------------------------------------------------------------

def _chip_case(d: Path, words, **replace):
    m.tiny(d / "m.onnx")
    m.chip(d / "c.toml", **replace)
    return {"argv": ["compile", "m.onnx", "--target", "c.toml", "-o", "out"],
            "words": ["c.toml:"] + words}


@case
def chip_with_zero_clock(d: Path):
    return _chip_case(d, ["clock_hz", "above 0"], clock_hz="0")


@case
def chip_with_nan_bandwidth(d: Path):
    return _chip_case(d, ["finite"], dram_bandwidth_bytes_per_s="nan")


@case
def chip_with_infinite_clock(d: Path):
    return _chip_case(d, ["finite"], clock_hz="inf")


@case
def chip_with_negative_units(d: Path):
    return _chip_case(d, ["units", "above 0"], units="-1")


@case
def chip_with_a_zero_mac_array(d: Path):
    return _chip_case(d, ["mac_array"], mac_array="[0, 4]")


@case
def chip_with_zero_alignment(d: Path):
    return _chip_case(d, ["dma_alignment_bytes"], dma_alignment_bytes="0")


@case
def chip_with_nested_arrays(d: Path):
    return _chip_case(d, ["mac_array"], mac_array="[[32], [4]]")


@case
def chip_that_is_not_utf8(d: Path):
    m.tiny(d / "m.onnx")
    m.chip(d / "c.toml")
    with open(d / "c.toml", "ab") as f:
        f.write(b"# \xff\xfe\n")
    return {"argv": ["compile", "m.onnx", "--target", "c.toml", "-o", "out"],
            "words": ["c.toml:", "UTF-8"]}


@case
def chip_with_too_little_dram(d: Path):
    m.tiny(d / "m.onnx", width=65536)
    m.chip(d / "c.toml", dram_bytes="65536")
    return {"argv": ["compile", "m.onnx", "--target", "c.toml", "-o", "out"],
            "words": ["DRAM", "65536"]}


@case
def unknown_target_name(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": ["compile", "m.onnx", "--target", "warbo", "-o", "out"],
            "words": ["did you mean warboy"]}


# -- schedules ---------------------------------------------------------------------------

def _schedule(d: Path, groups) -> str:
    (d / "s.json").write_text(json.dumps({"format": "npuc-schedule", "version": 1,
                                          "target": "generic-npu", "groups": groups}))
    return "s.json"


@case
def schedule_pin_that_cannot_fit(d: Path):
    m.tiny(d / "m.onnx", width=1 << 20)
    _schedule(d, [{"name": "g", "nodes": ["r"], "tile": {"axis": None}}])
    return {"argv": COMPILE + ["--schedule-in", "s.json", "-o", "out"],
            "words": ["s.json", "SRAM"]}


@case
def schedule_pin_on_a_groups_second_node(d: Path):
    m.tiny(d / "m.onnx")
    _schedule(d, [{"name": "g", "nodes": ["y"], "tile": {"axis": None}}])
    return {"argv": COMPILE + ["--schedule-in", "s.json", "-o", "out"],
            "words": ["s.json", "'y'", "first node"]}


@case
def schedule_file_that_is_not_json(d: Path):
    m.tiny(d / "m.onnx")
    (d / "s.json").write_text("{")
    return {"argv": COMPILE + ["--schedule-in", "s.json", "-o", "out"], "words": ["s.json"]}


# -- messages ----------------------------------------------------------------------------

@case
def compile_error_names_the_file_not_the_graph(d: Path):
    from onnx import helper as h

    m.save(d / "sm.onnx", [h.make_node("Softmax", ["x"], ["y"], axis=5, name="sm")],
           [m.vi("x", [2, 3])], [m.vi("y", [2, 3])])
    return {"argv": ["compile", "sm.onnx", "--target", "warboy", "-o", "out"],
            "words": ["sm.onnx:"], "not_words": ["g:"]}


@case
def verify_batch_zero(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": ["verify", "m.onnx", "--target", "generic-npu", "--batch", "0"],
            "words": ["--batch"]}


@case
def verify_float64_inputs(d: Path):
    m.tiny(d / "m.onnx")
    np.savez(d / "in.npz", x=np.zeros((1, 4)))
    return {"argv": ["verify", "m.onnx", "--target", "generic-npu", "--quantize", "none",
                     "--inputs", "in.npz"], "words": ["in.npz", "float64"]}


@case
def verify_extra_inputs(d: Path):
    m.tiny(d / "m.onnx")
    np.savez(d / "in.npz", x=np.zeros((1, 4), np.float32), z=np.zeros(1, np.float32))
    return {"argv": ["verify", "m.onnx", "--target", "generic-npu", "--quantize", "none",
                     "--inputs", "in.npz"], "words": ["in.npz", "'z'"]}


@case
def opt_print_after_an_unknown_pass(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": ["opt", "m.onnx", "--print-after", "no-such-pass"],
            "words": ["no-such-pass"]}


@case
def quantize_keep_float_an_unknown_node(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": ["quantize", "m.onnx", "--calibration", "random:2", "--keep-float", "nope",
                     "-o", "q.npuir"], "words": ["nope"]}


@case
def quantize_negative_sensitivity(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": ["quantize", "m.onnx", "--calibration", "random:2", "--sensitivity", "-2",
                     "-o", "q.npuir"], "words": ["--sensitivity"]}


@case
def run_empty_inputs_name(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": ["run", "m.onnx", "--inputs", ""], "words": ["empty"]}


@case
def negative_declared_dimension(d: Path):
    m.save(d / "n.onnx", [m.h.make_node("Relu", ["x"], ["y"])], [m.vi("x", [-3, 4])],
           [m.vi("y", [-3, 4])])
    return {"argv": ["run", "n.onnx"], "words": ["n.onnx", "negative"]}


@case
def huge_declared_dimension(d: Path):
    m.save(d / "n.onnx", [m.h.make_node("Relu", ["x"], ["y"])], [m.vi("x", [2**40, 4])],
           [m.vi("y", [2**40, 4])])
    return {"argv": ["compile", "n.onnx", "--target", "warboy", "-o", "out"],
            "words": ["n.onnx", "limit"]}


@case
def report_on_an_edited_folder(d: Path):
    m.tiny(d / "m.onnx")
    return {"setup": COMPILE + ["-o", "out"], "edit": ("out/summary.json", "layers", "x"),
            "argv": ["report", "out"], "words": ["summary.json", "layers"]}


@case
def explain_on_an_edited_folder(d: Path):
    m.tiny(d / "m.onnx")
    return {"setup": COMPILE + ["-o", "out"], "edit": ("out/schedule.json", "groups", [1]),
            "argv": ["explain", "out"], "words": ["schedule.json", "groups"]}


@case
def text_ir_with_a_malformed_header(d: Path):
    (d / "m.npuir").write_text("npuir 1 blobs 123\ngraph g(%x: f32[1]) {\n}\n")
    return {"argv": ["run", "m.npuir"], "words": ["m.npuir"]}

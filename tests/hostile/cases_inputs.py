"""Hostile cases about chip files, schedules, messages and models: each builds its
files in its own folder and says what must happen.

A case is a function ``(folder: Path) -> dict`` registered with :func:`case`; the dict has
``argv`` (the npuc command line, run with ``folder`` as the current folder), and
optionally ``code`` (the exit code expected, 2 by default), ``words`` (text the one-line
error must contain), ``allowed`` (paths the command may write; nothing else under the
folder may change), ``env`` and ``fsize`` (a file size limit, to play a full disk).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import models as m
from .cases_outputs import COMPILE
from .registry import case

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


# -- models that break npuc's assumptions ---------------------------------------------------

@case
def compile_an_initializer_as_graph_output(d: Path):
    from onnx import numpy_helper as nh

    m.save(d / "i.onnx", [m.h.make_node("Relu", ["x"], ["y"])], [m.vi("x", [2])],
           [m.vi("y", [2]), m.vi("w", [2])], [nh.from_array(np.ones(2, np.float32), "w")])
    return {"argv": ["compile", "i.onnx", "--target", "warboy", "-o", "out"],
            "words": ["i.onnx", "'w'", "constant"]}


@case
def compile_a_zero_size_conv_input(d: Path):
    m.conv(d / "z.onnx", height=0, pads=(1, 1, 1, 1))
    return {"argv": ["compile", "z.onnx", "--target", "warboy", "-o", "out"],
            "words": ["z.onnx", "dimension of 0"]}


@case
def compile_an_infinite_weight(d: Path):
    w = np.ones((4, 3, 3, 3), np.float32)
    w[0, 0, 0, 0] = np.inf
    m.conv(d / "w.onnx", weight=w)
    return {"argv": ["compile", "w.onnx", "--target", "warboy", "-o", "out"],
            "words": ["w.onnx", "infinite"]}


@case
def quantize_a_nan_weight(d: Path):
    w = np.ones((4, 3, 3, 3), np.float32)
    w[1, 0, 0, 0] = np.nan
    m.conv(d / "w.onnx", weight=w)
    return {"argv": ["quantize", "w.onnx", "--calibration", "random:2", "-o", "q.npuir"],
            "words": ["NaN"]}


@case
def compile_with_all_nan_calibration(d: Path):
    m.conv(d / "c.onnx")
    np.savez(d / "cal.npz", x=np.full((1, 3, 8, 8), np.nan, np.float32))
    return {"argv": ["compile", "c.onnx", "--target", "warboy", "--calibration", "cal.npz",
                     "-o", "out"], "words": ["cal.npz", "NaN"]}


@case
def external_data_at_a_negative_offset(d: Path):
    m.external(d / "e.onnx", offset="-5")
    return {"argv": ["compile", "e.onnx", "--target", "warboy", "-o", "out"],
            "words": ["e.onnx", "offset"]}


@case
def external_data_offset_not_a_number(d: Path):
    m.external(d / "e.onnx", offset="abc")
    return {"argv": ["run", "e.onnx"], "words": ["e.onnx", "offset"]}


@case
def external_data_location_with_nul(d: Path):
    m.external(d / "e.onnx", location="ext\0.bin")
    return {"argv": ["compile", "e.onnx", "--target", "warboy", "-o", "out"],
            "words": ["e.onnx", "location"]}


@case
def text_ir_declaring_a_type_its_node_cannot_produce(d: Path):
    m.tiny(d / "m.onnx")
    return {"setup": ["convert", "m.onnx", "-o", "m.npuir"],
            "replace": ("m.npuir", "Relu(%x) : f32[batch,4]", "Relu(%x) : i64[batch,7]"),
            "argv": ["run", "m.npuir"], "words": ["m.npuir", "Relu", "i64"]}


@case
def text_ir_declaring_a_huge_input(d: Path):
    m.tiny(d / "m.onnx")
    return {"setup": ["convert", "m.onnx", "-o", "m.npuir"],
            "replace": ("m.npuir", "%x: f32[batch,4]", "%x: f32[1099511627776,4]"),
            "argv": ["run", "m.npuir"], "words": ["m.npuir", "limit"]}


@case
def compile_into_dev(d: Path):
    m.tiny(d / "m.onnx")
    return {"argv": COMPILE + ["-o", "/dev/npuc-out"], "words": ["/dev"]}


@case
def compile_with_calibration_for_other_inputs(d: Path):
    m.tiny(d / "m.onnx")
    np.savez(d / "cal.npz", z=np.zeros((1, 4), np.float32))
    return {"argv": ["compile", "m.onnx", "--target", "warboy", "--calibration", "cal.npz",
                     "-o", "out"], "words": ["cal.npz", "'x'"]}

"""Weights, KV cache and activations are checked against the chip's DRAM."""

import contextlib
import dataclasses
import io

import pytest

import npuc
from npuc.compiler.cli import main
from npuc.ir.errors import NpucError
from npuc.targets import get_target


def test_a_model_larger_than_the_dram_is_refused_with_its_sizes():
    rngd = get_target("rngd")
    small = dataclasses.replace(rngd, memory=dataclasses.replace(rngd.memory,
                                                                 dram_bytes=100_000))
    with pytest.raises(NpucError, match=r"does not fit rngd's DRAM: \d+ bytes of weights "
                                        r"\+ \d+ bytes of inputs.*rngd has 100000"):
        npuc.compile("zoo:llama-tiny", small, quantize="bf16")
    assert npuc.compile("zoo:llama-tiny", rngd, quantize="bf16").summary["weights_bytes"] \
        < rngd.memory.dram_bytes


def test_the_command_line_exits_2(tmp_path):
    text = open(get_target("rngd").source, encoding="utf-8").read()
    text = text.replace("dram_bytes = 51539607552", "dram_bytes = 100000")
    text = text.replace('name = "rngd"', 'name = "tiny-dram"')
    chip = tmp_path / "tiny-dram.toml"
    chip.write_text(text, encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["compile", "zoo:llama-tiny", "--target", str(chip), "--quantize", "none",
                     "-o", str(tmp_path / "out")])
    assert code == 2
    assert "does not fit tiny-dram's DRAM" in err.getvalue()
    assert "Traceback" not in err.getvalue()

"""The shipped chips: their figures (CHIPS.md) and which of them are estimates."""

import argparse
import json

import pytest

from npuc.compiler.commands import targets as command
from npuc.targets import get_target, list_targets

SHIPPED = ["atom", "cpu", "generic-npu", "rngd", "warboy", "warboy-2pe", "x220-compact",
           "x220-enterprise", "x330"]
MiB, GiB = 2**20, 2**30


def targets_json(capsys, *argv):
    parser = argparse.ArgumentParser(prog="npuc")
    command.add_parser(parser.add_subparsers(dest="command"))
    assert command.run(parser.parse_args(["targets", *argv, "--json"])) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def chips():
    return {t.name: t for t in list_targets()}


def test_every_chip_is_shipped(chips):
    assert sorted(chips) == SHIPPED


def test_warboy_2pe_figures(capsys):
    j = targets_json(capsys, "show", "warboy-2pe")
    assert j["peak_ops_per_s"] == {"int8": 64e12}          # W1: INT8 only
    assert j["sram_bytes"] == 32 * MiB                      # W1, W6: 128 x 256 KiB
    assert j["dram_bytes"] == 16 * GiB
    assert j["dram_bandwidth_bytes_per_s"] == 66e9
    assert "Conv" in j["supported_ops"] and "Erf" not in j["supported_ops"]
    assert j["source"].endswith("warboy-2pe.toml")
    assert not any(e.startswith(("compute.peak", "memory.sram", "memory.dram"))
                   for e in j["estimated"])


def test_warboy_one_pe_is_half(chips):
    one, two = chips["warboy"], chips["warboy-2pe"]
    assert one.peak_ops("int8") * 2 == two.peak_ops("int8") == 64e12
    assert one.memory.sram_bytes * 2 == two.memory.sram_bytes
    assert one.compute.clock_hz == 2.0e9
    assert one.is_estimated("memory.dram_bandwidth_bytes_per_s")  # a shared card split


def test_rngd_figures(capsys):
    j = targets_json(capsys, "show", "rngd")
    assert j["peak_ops_per_s"] == {"bf16": 256e12, "fp8": 512e12, "int8": 512e12,
                                   "int4": 1024e12}
    assert j["clock_hz"] == 1e9
    assert j["sram_bytes"] == 256 * MiB
    assert j["dram_bytes"] == 48 * GiB
    assert j["dram_bandwidth_bytes_per_s"] == 1.5e12
    assert j["dma_alignment_bytes"] == 256
    assert j["quantization"]["preferred"] == "bf16"
    assert "bf16" not in j["quantization"]["calibration"]
    assert "compute.peak_ops_per_s" not in j["estimated"]
    assert "operators" in j["estimated"]


def test_atom_figures_and_estimates(chips):
    atom = chips["atom"]
    assert atom.compute.units == 8
    assert atom.memory.sram_bytes == 64 * MiB and atom.memory.dram_bytes == 16 * GiB
    assert atom.is_estimated("compute.peak_ops_per_s.int8")
    assert atom.is_estimated("memory.dram_bandwidth_bytes_per_s")
    assert not atom.is_estimated("memory.sram_bytes")
    assert atom.rule("Erf") is None and atom.rule("ArgMax") is None  # host ops (A6)
    assert "secondary" in atom.assumption("compute.peak_ops_per_s")


def test_x220_peaks_are_estimated_from_mlperf(chips):
    compact, enterprise = chips["x220-compact"], chips["x220-enterprise"]
    assert compact.memory.sram_bytes == 11 * MiB and enterprise.memory.sram_bytes == 22 * MiB
    assert compact.memory.dram_bytes == 8 * GiB and enterprise.memory.dram_bytes == 16 * GiB
    for chip in (compact, enterprise):
        assert chip.is_estimated("compute.peak_ops_per_s.int8")
        assert chip.is_estimated("compute.clock_hz")
        assert "MLPerf" in chip.assumption("compute.peak_ops_per_s")
    # 6769 and 13101 samples/s (S1) at Warboy's 2758 samples/s per 64 TOPS (W1, W7)
    assert compact.peak_ops("int8") == pytest.approx(6769 * 64e12 / 2758, rel=0.01)
    assert enterprise.peak_ops("int8") == pytest.approx(13101 * 64e12 / 2758, rel=0.01)


def test_x330_is_estimated_throughout(capsys):
    j = targets_json(capsys, "show", "x330")
    for table in ("compute", "memory", "quantization", "operators", "fusion", "layout"):
        assert table in j["estimated"]
        assert j["assumptions"][table]


def test_every_estimate_has_an_assumption(chips):
    for chip in chips.values():
        for path in chip.estimated:
            assert chip.assumption(path), (chip.name, path)


def test_list_json_has_the_fields(capsys):
    listed = targets_json(capsys)
    assert [j["name"] for j in listed] == SHIPPED
    for j in listed:
        for key in ("name", "description", "source", "peak_ops_per_s", "sram_bytes",
                    "dram_bytes", "dram_bandwidth_bytes_per_s", "estimated", "supported_ops"):
            assert key in j


def test_plain_table_marks_estimates(capsys):
    parser = argparse.ArgumentParser(prog="npuc")
    command.add_parser(parser.add_subparsers(dest="command"))
    assert command.run(parser.parse_args(["targets"])) == 0
    out = capsys.readouterr().out
    warboy = next(line for line in out.splitlines() if line.startswith("warboy-2pe "))
    assert "int8 64 TOPS" in warboy and "~" not in warboy
    x330 = next(line for line in out.splitlines() if line.startswith("x330 "))
    assert "~int8 304 TOPS" in x330


def test_show_names_the_limits(capsys):
    parser = argparse.ArgumentParser(prog="npuc")
    command.add_parser(parser.add_subparsers(dest="command"))
    command.run(parser.parse_args(["targets", "show", "warboy"]))
    assert "Conv group must be at most 128" in capsys.readouterr().out


def test_cpu_runs_everything():
    cpu = get_target("cpu")
    assert cpu.kind == "cpu" and cpu.rule("AnythingAtAll") is not None

"""Tiled programs compute exactly what the graph computes, tile by tile."""

import json

import numpy as np
import pytest

import npuc
from npuc.compiler.executor.diagnose import first_difference
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.executor.simulator import simulate


def _run(result):
    from npuc import zoo

    feeds = zoo.sample_inputs(result.proto, batch=1)
    want = execute(result.graph, feeds)
    got = simulate(result.program, result.weights, feeds)
    return want, got


@pytest.mark.parametrize("model", ["resnet-tiny", "mobilenetv2-tiny", "bert-tiny"])
def test_small_sram_forces_tiles_and_results_match(model, small_sram_target):
    r = npuc.compile(f"zoo:{model}", small_sram_target, quantize="none")
    assert any(g.tile.count > 1 for g in r.schedule.groups)
    assert r.summary["sram_peak_bytes"] <= 12000
    want, got = _run(r)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("chip,precision", [("warboy-2pe", "int8"), ("rngd", "bf16"),
                                            ("rngd", "fp8"), ("atom", "fp16"),
                                            ("atom", "int8")])
@pytest.mark.parametrize("model", ["resnet-tiny", "bert-tiny"])
def test_tiled_programs_are_bit_identical_in_every_precision(model, chip, precision,
                                                             small_sram_chip):
    """Tiling changes no bit: the tiles of a program compute what the whole tensors of
    its IR compute, whatever the precision the IR rounds to."""
    r = npuc.compile(f"zoo:{model}", small_sram_chip(chip), quantize=precision,
                     calibration="random:2")
    assert r.precision == precision
    assert any(g.tile.count > 1 for g in r.schedule.groups)
    want, got = _run(r)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_schedule_round_trip_and_pinned_tile(tmp_path, small_sram_target):
    first = npuc.compile("zoo:resnet-tiny", small_sram_target, quantize="none",
                         schedule_out=str(tmp_path / "s.json"))
    again = npuc.compile("zoo:resnet-tiny", small_sram_target, quantize="none",
                         schedule_in=str(tmp_path / "s.json"))
    assert again.files["program.json"] == first.files["program.json"]
    data = json.loads((tmp_path / "s.json").read_text())
    conv = next(g for g in data["groups"] if g["tile"]["axis"] == 2 and g["tile"]["rows"] > 1)
    conv["tile"]["rows"] -= 1
    (tmp_path / "pinned.json").write_text(json.dumps(data))
    pinned = npuc.compile("zoo:resnet-tiny", small_sram_target, quantize="none",
                          schedule_in=str(tmp_path / "pinned.json"))
    group = pinned.schedule.group_of(conv["nodes"][0])
    assert group.tile.rows == conv["tile"]["rows"] and group.tile.pinned
    want, got = _run(pinned)
    np.testing.assert_array_equal(got["output"], want["output"])


def test_corrupted_allocation_is_detected():
    r = npuc.compile("zoo:resnet-tiny", "warboy-2pe", quantize="none")
    program = json.loads(json.dumps(r.program))
    # move one resident tensor onto another buffer that is live at the same time
    buffers = [b for b in program["memory"]["buffers"] if b["space"] == "sram"]
    # a tensor kept on chip, and a buffer written while it is still waiting to be read
    pairs = [(v, o) for v in buffers if v["name"].startswith("res/") for o in buffers
             if v["first"] < o["first"] < v["last"]]
    victim, other = pairs[0]
    tensor = victim["name"][4:]
    for cmd in program["commands"]:
        for r_ in (cmd.get("inputs") or []) + (cmd.get("outputs") or []):
            if r_ and r_["space"] == "sram" and r_["tensor"] == tensor:
                r_["offset"] = other["offset"]
    from npuc import zoo

    feeds = zoo.sample_inputs(r.proto, batch=1)
    want = execute(r.graph, feeds)["output"]
    got = simulate(program, r.weights, feeds)["output"]
    assert not np.allclose(got, want, atol=1e-3)
    exact = simulate(r.program, r.weights, feeds)["output"]
    np.testing.assert_array_equal(exact, want)
    # the diagnosis names the first command whose output no longer matches the IR
    diff = first_difference(r.graph, program, r.weights, feeds)
    assert diff is not None and diff.node in {n for g in program["groups"] for n in g["nodes"]}
    assert diff.group is not None and diff.differing > 0
    assert f"node '{diff.node}'" in diff.describe()
    assert first_difference(r.graph, r.program, r.weights, feeds) is None

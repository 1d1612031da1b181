"""The roofline printed beside each estimate is a lower bound of it.

The roofline's memory term counts the bytes that cross DRAM, after cascading keeps
tensors on chip, and its compute term the chip's peak at the precision the group is
estimated at; the estimate adds utilisation, alignment, re-reads and tile setup on top.
So for every group of every compiled model: estimate >= roofline.
"""

from __future__ import annotations

import pytest

import npuc.compiler.driver as driver

TINY = ["resnet-tiny", "mobilenetv2-tiny", "bert-tiny", "gpt2-tiny", "vit-tiny"]
TARGETS = ["warboy-2pe", "rngd", "atom", "x220-enterprise"]


def _check(result):
    layers = result.summary["layers"]
    assert layers
    for layer in layers:
        assert layer["estimated_s"] >= layer["roofline_s"] * (1 - 1e-9), (
            f"{layer['group']} ({', '.join(layer['ops'])} on {layer['device']}): estimate "
            f"{layer['estimated_s']:.3e} s is below its roofline {layer['roofline_s']:.3e} s")
    for g in result.schedule.groups:
        roof = g.estimate["roofline"]
        # the memory term never counts more bytes than the schedule moves
        assert roof["bytes"] <= g.estimate["dma_bytes"] or g.device == "cpu"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("model", TINY)
def test_estimate_at_least_roofline_tiny(model, target):
    _check(driver.compile(f"zoo:{model}", target, calibration="random:2"))


def test_estimate_at_least_roofline_resnet50():
    _check(driver.compile("zoo:resnet50", "warboy-2pe", calibration="random:2"))


@pytest.mark.parametrize("matplotlib", [True, False])
def test_plot_of_layers_without_work_or_without_a_peak(matplotlib):
    from npuc.compiler.report.roofline import roofline_svg

    layers = [{"device": "npu", "intensity": 0.0, "ops_count": 0.0, "estimated_s": 1e-6,
               "group": "g0"},
              {"device": "npu", "intensity": 1e-9, "ops_count": 5.0, "estimated_s": 1e-6,
               "group": "g1"}]
    for peak in (0.0, 1e12):
        svg = roofline_svg({"layers": layers, "peak_ops_per_s": peak, "target": "t",
                            "dram_bandwidth_bytes_per_s": 1e9, "estimated_at": "int8"},
                           use_matplotlib=matplotlib)
        assert svg.startswith("<svg")

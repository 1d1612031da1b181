"""Shared helpers for the target tests: a small chip with round numbers."""

import pytest

from npuc.targets.loader import parse_target

TINY_CHIP = """
schema_version = 1
name = "tiny"
description = "A chip with round numbers for hand-computed costs"
estimated = ["compute"]

[assumptions]
compute = "Made up for tests."

[compute]
units = 2                      # 2 units of a 4 x 4 MAC array: 32 MACs per cycle
mac_array = [4, 4]
clock_hz = 1e9
vector_elements_per_cycle = 8

[compute.peak_ops_per_s]
int8 = 64e9                    # 32 MACs x 2 ops x 1 GHz

[memory]
sram_bytes = 65536
sram_banks = 2
dram_bytes = 1048576
dram_bandwidth_bytes_per_s = 1e9   # 1 byte per cycle
dma_alignment_bytes = 1

[quantization]
dtypes = ["int8"]
preferred = "int8"
weights = "per-channel"
weights_symmetric = true
activations = "asymmetric"
calibration = ["int8"]

[operators]
supported = ["Conv", "Gemm", "MatMul", "Relu", "Add"]

[fusion]
elementwise_chains = true

[fusion.epilogues]
Conv = ["Relu"]

[layout]
preferred = "NHWC"
channel_alignment = 4
"""


@pytest.fixture
def tiny():
    return parse_target(TINY_CHIP, "tiny.toml")


@pytest.fixture
def tiny_text():
    """The text of the tiny chip file, to edit in tests."""
    return TINY_CHIP

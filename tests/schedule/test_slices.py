"""Tile rules: what a convolution reads for a run of output rows (halos, padding)."""

import numpy as np

from npuc.compiler.schedule.slices import tile_rule
from npuc.ir.graph import Graph
from npuc.ir.types import tensor


def _conv(k=3, stride=1, pad=1, height=8):
    g = Graph()
    x = g.add_input("x", tensor("f32", [1, 2, height, height]))
    w = g.add_constant("w", np.ones((4, 2, k, k), np.float32))
    out = (height + 2 * pad - k) // stride + 1
    node = g.create_node("Conv", [x, w], [("y", tensor("f32", [1, 4, out, out]))],
                         {"kernel_shape": [k, k], "strides": [stride, stride],
                          "pads": [pad, pad, pad, pad]}, name="c")
    return node


def test_first_tile_keeps_the_top_padding_and_reads_a_halo_below():
    rule = tile_rule(_conv(), 2, 0, 4)
    assert (rule.needs[0].lo, rule.needs[0].hi) == (0, 5)
    assert rule.attrs["pads"] == [1, 1, 0, 1]


def test_middle_tile_reads_halos_on_both_sides_without_padding():
    rule = tile_rule(_conv(height=12), 2, 4, 8)
    assert (rule.needs[0].lo, rule.needs[0].hi) == (3, 9)
    assert rule.attrs["pads"] == [0, 1, 0, 1]


def test_strided_conv_maps_rows_through_the_stride():
    rule = tile_rule(_conv(stride=2, height=8), 2, 2, 4)
    assert (rule.needs[0].lo, rule.needs[0].hi) == (3, 8)
    assert rule.attrs["pads"] == [0, 1, 0, 1]


def test_weights_are_read_whole():
    rule = tile_rule(_conv(), 2, 0, 4)
    assert rule.needs[1].axis is None

"""Laws that keep internal errors out of the estimates, the roofline plot and generated
inputs, for any sizes (empty tensors, one-element tiles, symbolic and -1 dimensions):

- the cost of any product or elementwise group is finite and non-negative, with any tile;
- the roofline plot is drawn for any layers and any chip figures, zeros included;
- random inputs have non-negative shapes and the declared dtypes, whatever the signature.
"""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npuc.compiler.executor.inputs import random_inputs
from npuc.compiler.report.roofline import roofline_svg
from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph
from npuc.ir.types import tensor
from npuc.targets import Tile, estimate_group
from npuc.targets.registry import get_target

CHIPS = ["warboy-2pe", "rngd", "atom", "x220-enterprise"]
SIZES = st.integers(0, 300)
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _finite(e) -> bool:
    return all(math.isfinite(x) and x >= 0 for x in (e.seconds, e.compute_cycles))


@SETTINGS
@given(m=SIZES, n=SIZES, k=SIZES, chip=st.sampled_from(CHIPS), dtype=st.sampled_from(
    ["i8", "f16", "bf16", "f32"]), tile=st.none() | st.tuples(SIZES, SIZES, SIZES))
def test_any_product_has_a_finite_cost(m, n, k, chip, dtype, tile):
    g = Graph()
    a = g.add_input("a", tensor(dtype, [m, k]))
    b = g.add_constant("b", np.zeros((k, n), np.float32))
    node = g.create_node("MatMul", [a, b], [("y", tensor(dtype, [m, n]))])
    relu = g.create_node("Relu", [node.outputs[0]], [("r", tensor(dtype, [m, n]))])
    t = None if tile is None else Tile(*tile)
    assert _finite(estimate_group([node, relu], get_target(chip), t))


@SETTINGS
@given(shape=st.lists(st.integers(0, 50), min_size=0, max_size=4),
       chip=st.sampled_from(CHIPS))
def test_any_elementwise_group_has_a_finite_cost(shape, chip):
    g = Graph()
    x = g.add_input("x", tensor("i8", shape))
    node = g.create_node("Sigmoid", [x], [("y", tensor("i8", shape))])
    assert _finite(estimate_group([node], get_target(chip)))


NUMBER = st.floats(0.0, 1e300, allow_nan=False) | st.sampled_from([0.0, 5e-324, 1e-30, 1e-9, 1e308])


@settings(max_examples=40, deadline=None)
@given(layers=st.lists(st.fixed_dictionaries({
    "device": st.sampled_from(["npu", "cpu"]), "intensity": NUMBER, "ops_count": NUMBER,
    "estimated_s": NUMBER, "group": st.just("g")}), max_size=6),
    peak=NUMBER, bw=NUMBER)
def test_the_roofline_plot_is_drawn_for_any_layers(layers, peak, bw):
    svg = roofline_svg({"layers": layers, "peak_ops_per_s": peak, "target": "t",
                        "dram_bandwidth_bytes_per_s": bw, "estimated_at": "int8"},
                       use_matplotlib=False)
    assert svg.startswith("<svg") and "nan" not in svg.lower()


DIM = st.integers(-3, 6) | st.sampled_from(["batch", "seq", "unk__1"])


@SETTINGS
@given(shapes=st.lists(st.lists(DIM, max_size=4), min_size=1, max_size=3),
       dtypes=st.lists(st.sampled_from(["f32", "f16", "i64", "i32", "u8", "bool"]),
                       min_size=3, max_size=3))
def test_random_inputs_have_non_negative_shapes(shapes, dtypes):
    g = Graph()
    for i, shape in enumerate(shapes):
        g.add_input(f"in{i}", tensor(dtypes[i], shape))
    try:
        feeds = random_inputs(g, seed=0)
    except NpucError:
        return  # refused with a message is fine; an internal error is not
    for i, shape in enumerate(shapes):
        arr = feeds[f"in{i}"]
        assert arr.ndim == len(shape) and all(d >= 0 for d in arr.shape)
        assert all(d == s for d, s in zip(arr.shape, shape) if isinstance(s, int) and s >= 0)

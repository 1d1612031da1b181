"""A group is tiled once per structure: identical layers reuse the answer, and the
schedule is the one tiling every group would give."""

import dataclasses

import npuc
from npuc.compiler.schedule import schedule
from npuc.compiler.schedule.prepare import load_static
from npuc.compiler.schedule.tile_cache import TileCache, group_key
from npuc.targets import get_target


class Never(TileCache):
    """A cache that never answers: every group tiled by the walk and the cost model."""

    def get(self, key):
        return None


def _graph(model):
    graph, _ = load_static(model, 1)
    return npuc.optimize(graph, level=2)


def test_identical_layers_are_tiled_once_and_the_schedule_is_unchanged():
    target = get_target("rngd")
    cached, fresh = TileCache(), Never()
    a = schedule(_graph("zoo:llama-tiny"), target, "bf16", tiles=cached)
    b = schedule(_graph("zoo:llama-tiny"), target, "bf16", tiles=fresh)
    assert cached.hits > 0  # the second layer's groups are the first's
    assert [(g.name, g.nodes, dataclasses.asdict(g.tile), g.estimate) for g in a.groups] == \
        [(g.name, g.nodes, dataclasses.asdict(g.tile), g.estimate) for g in b.groups]
    assert a.estimated_seconds == b.estimated_seconds


def test_the_key_tells_shapes_budgets_and_small_constants_apart():
    import numpy as np

    g = _graph("zoo:llama-tiny")
    target = get_target("rngd")
    by_name = {n.name: n for n in g.nodes}

    def key(name, budget=1 << 20):
        return group_key([by_name[f"/model/layers/layers.{name}"]], target, budget, "bf16")

    assert key("0/self_attn/Reshape") == key("1/self_attn/Reshape")  # the same layer
    assert key("0/self_attn/Reshape_1") == key("0/self_attn/Reshape_2")  # keys and values
    assert key("0/self_attn/Reshape") != key("0/self_attn/Reshape_1")  # other shapes
    assert key("0/self_attn/Reshape") != key("0/self_attn/Reshape", 1 << 19)
    node = by_name["/model/layers/layers.0/self_attn/Reshape_1"]  # the same shapes,
    node.set_input(1, g.add_constant("other", np.array([1, 8, 2, 16], np.int64)))  # other values
    assert key("0/self_attn/Reshape_1") != key("0/self_attn/Reshape_2")

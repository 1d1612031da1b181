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


def _two_relus(middle_is_output: bool, weight_from_dequantize: bool):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    f = TensorProto.FLOAT
    inits = [numpy_helper.from_array(np.ones((8, 8), np.int8), "q"),
             numpy_helper.from_array(np.float32(0.5), "s")]
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r1"),
             helper.make_node("Relu", ["a"], ["b"], name="r2"),
             helper.make_node("DequantizeLinear", ["q", "s"], ["wq"], name="dq"),
             helper.make_node("Relu", ["w"], ["wr"], name="rw"),
             helper.make_node("MatMul", ["b", "wq" if weight_from_dequantize else "wr"], ["y"],
                              name="mm")]
    outputs = [helper.make_tensor_value_info("y", f, [1, 8, 8])]
    if middle_is_output:
        outputs.append(helper.make_tensor_value_info("a", f, [1, 8, 8]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", f, [1, 8, 8]),
                                           helper.make_tensor_value_info("w", f, [8, 8])],
                              outputs, inits)
    g = npuc.import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]))
    return {n.name: n for n in g.nodes}


def test_the_key_tells_what_leaves_the_group_and_where_a_weight_comes_from():
    target = get_target("rngd")
    plain = _two_relus(False, True)
    leaving = _two_relus(True, True)
    computed = _two_relus(False, False)

    def key(nodes, *names):
        return group_key([nodes[n] for n in names], target, 1 << 20, "bf16")

    assert key(plain, "r1", "r2") == key(_two_relus(False, True), "r1", "r2")
    assert key(plain, "r1", "r2") != key(leaving, "r1", "r2")  # 'a' is also stored
    assert key(plain, "mm") != key(computed, "mm")  # a dequantized weight, not an activation


def _split(second_read: bool):
    from onnx import TensorProto, helper

    f = TensorProto.FLOAT
    nodes = [helper.make_node("Split", ["x"], ["p", "q"], axis=2, num_outputs=2, name="sp")]
    outputs = [helper.make_tensor_value_info("p", f, [1, 8, 4])]
    if second_read:
        nodes.append(helper.make_node("Relu", ["q"], ["r"], name="after"))
        outputs.append(helper.make_tensor_value_info("r", f, [1, 8, 4]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", f, [1, 8, 8])],
                              outputs)
    g = npuc.import_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    return next(n for n in g.nodes if n.name == "sp")


def test_the_key_tells_an_unread_output_from_one_read_after_the_group():
    target = get_target("rngd")
    unread, read = (group_key([_split(r)], target, 1 << 20, "bf16") for r in (False, True))
    assert unread != read

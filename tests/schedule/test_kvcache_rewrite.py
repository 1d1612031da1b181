"""attach_cache on small graphs: the forms a decoder's cache output takes, rewritten into
npuc::KVCacheWrite of a device-resident cache."""

import numpy as np
import pytest

from npuc.compiler.executor.interpreter import execute
from npuc.compiler.schedule.kvcache import POSITION, attach_cache, entries
from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph
from npuc.ir.types import tensor


def cache_graph(past: int, s: int = 1, extra_reader: bool = False) -> Graph:
    """``present = Concat(past, new * 2)``, read by a ReduceSum (attention's stand-in)."""
    g = Graph("g")
    g.opset[""] = 17
    p = g.add_input("past_key_values.0.key", tensor("f32", [1, 2, past, 4]))
    x = g.add_input("x", tensor("f32", [1, 2, s, 4]))
    two = g.add_constant("two", np.array(2.0, np.float32))
    new = g.create_node("Mul", [x, two], [("new", tensor("f32", [1, 2, s, 4]))]).outputs[0]
    present = g.create_node("Concat", [p, new], [("present.0.key",
                                                  tensor("f32", [1, 2, past + s, 4]))],
                            {"axis": 2}).outputs[0]
    total = g.create_node("ReduceSum", [present], [("total", tensor("f32", [1, 1, 1, 1]))],
                          {"keepdims": 1}).outputs[0]
    g.outputs += [total, present]
    if extra_reader:
        g.create_node("Neg", [p], [("neg", tensor("f32", [1, 2, past, 4]))])
        g.outputs.append(g.value("neg"))
    return g


def test_decode_form_writes_into_the_cache_at_the_position():
    g = cache_graph(past=5)
    (e,) = attach_cache(g, 6)
    assert e.state == "present.0.key" and e.input == "past_key_values.0.key"
    assert [n.op_type for n in g.nodes] == ["Mul", "KVCacheWrite", "ReduceSum"]
    cache = np.arange(48, dtype=np.float32).reshape(1, 2, 6, 4)
    x = np.ones((1, 2, 1, 4), np.float32)
    out = execute(g, {"past_key_values.0.key": cache, "x": x, POSITION: np.array([2])})
    want = cache.copy()
    want[:, :, 2] = 2.0
    assert np.array_equal(out["present.0.key"], want)
    assert out["total"].item() == want.sum()


def test_prefill_forms_read_the_new_keys_and_write_them():
    g = cache_graph(past=0, s=3)
    (e,) = attach_cache(g, 8)
    assert "past_key_values.0.key" not in [v.name for v in g.inputs]
    assert e.input in [v.name for v in g.inputs] and entries(g) == [e]
    x = np.ones((1, 2, 3, 4), np.float32)
    out = execute(g, {e.input: np.zeros((1, 2, 8, 4), np.float32), "x": x,
                      POSITION: np.arange(3)})
    assert out["total"].item() == 2.0 * x.size  # attention read the 3 new rows only
    assert out["present.0.key"].shape == (1, 2, 8, 4)
    assert not out["present.0.key"][:, :, 3:].any() and (out["present.0.key"][:, :, :3] == 2).all()


def test_refusals_name_what_to_change():
    with pytest.raises(NpucError, match="past = 7"):
        attach_cache(cache_graph(past=5), 8)
    with pytest.raises(NpucError, match="read by more than the Concat"):
        attach_cache(cache_graph(past=5, extra_reader=True), 6)
    with pytest.raises(NpucError, match="shorter than the 3 tokens"):
        attach_cache(cache_graph(past=0, s=3), 2)

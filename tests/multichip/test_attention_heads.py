"""Tensor-parallel attention: each chip computes whole heads, one all_reduce joins the
output projection's partial sums."""

import numpy as np
import onnx
import pytest

from npuc.compiler import zoo
from npuc.compiler.multichip.compile import compile_chips
from npuc.compiler.multichip.heads import blocks
from npuc.compiler.multichip.simulate import verify_chips
from npuc.compiler.multichip.tensor import chip_graph
from npuc.ir.decisions import log_of

ATTN = "model.layers.{}.self_attn.{}_proj.weight_bf16"


@pytest.fixture(scope="module")
def two_chips():
    return compile_chips("zoo:decoder-tiny", "rngd", 2)


def _segment_tensors(program) -> dict:
    return {t: v["shape"] for s in program["segments"] for t, v in s["tensors"].items()}


def test_each_chip_holds_only_its_heads_of_the_q_k_v_and_output_weights(two_chips):
    whole = two_chips.graph.constants
    for c, program in enumerate(two_chips.programs):
        shapes = _segment_tensors(program)
        for layer in (0, 1):  # 4 query heads and 2 key/value heads of 16: half each
            for proj, shape in (("q", [64, 32]), ("k", [64, 16]), ("v", [64, 16]),
                                ("o", [32, 64])):
                name = ATTN.format(layer, proj)
                assert shapes[f"{name}.chip{c}"] == shape
                assert name not in shapes  # the whole weight is on no chip
        g = chip_graph(two_chips.graph, 2, c)
        q, o = ATTN.format(0, "q"), ATTN.format(0, "o")
        assert np.array_equal(g.constants[f"{q}.chip{c}"].const,
                              whole[q].const[:, 32 * c:32 * (c + 1)])
        assert np.array_equal(g.constants[f"{o}.chip{c}"].const,
                              whole[o].const[32 * c:32 * (c + 1)])
        # the key/value cache stays on its chip: one of the 2 key/value heads each
        assert shapes["present.0.key"] == [1, 1, 16, 16]
        assert program["sharded_outputs"] == {f"present.{i}.{kv}": -3 for i in (0, 1)
                                              for kv in ("key", "value")}


def test_one_all_reduce_per_attention_block_and_nothing_gathered_inside(two_chips):
    attentions = [n for n in two_chips.graph.nodes if n.op_type == "Attention"]
    moves = two_chips.manifest["transfers"]
    reduces = [t for t in moves if t["op"] == "all_reduce" and "self_attn" in t["tensor"]]
    assert [t["tensor"] for t in reduces] == \
        [f"/model/layers.{i}/self_attn/o_proj/MatMul_output_0" for i in (0, 1)]
    assert len(reduces) == len(attentions) == 2
    assert not [t for t in moves if t["op"] == "all_gather" and "self_attn" in t["tensor"]]
    assert all(d["action"] == "split by heads" for d in two_chips.manifest["attention"])


def test_four_key_value_heads_split_over_4_chips_and_verify(tmp_path):
    path = str(tmp_path / "d.onnx")
    onnx.save(zoo.build("decoder-tiny", batch=1, kv_heads=4), path)
    r = verify_chips(path, "rngd", 4)
    assert r["passed"], r["outputs"]
    assert [d["action"] for d in r["manifest"]["attention"]] == ["split by heads"] * 2
    assert r["manifest"]["segments"] == 5  # 2 all_reduces a layer, the head's gather


def test_heads_that_do_not_divide_by_the_chips_are_gathered_with_a_reason():
    result = compile_chips("zoo:decoder-tiny", "rngd", 4)
    found, decisions = blocks(result.graph, 4)
    assert found == [] and len(decisions) == 2
    for d in result.manifest["attention"]:
        assert d["action"] == "not split by heads"
        assert "4 query heads and 2 key/value heads do not divide by 4 chips" in d["reason"]
        logged = log_of(result.graph).about(d["attention"])
        assert [(e.action, e.reason) for e in logged if e.stage == "tensor-parallel"] == \
            [(d["action"], d["reason"])]
    gathered = {t["tensor"] for t in result.manifest["transfers"] if t["op"] == "all_gather"}
    assert "/model/layers.0/self_attn/q_proj/MatMul_output_0" in gathered


def test_an_attention_that_reads_a_past_key_value_cache_is_not_split():
    from npuc.compiler.pipeline import optimize_graph
    from npuc.compiler.schedule.prepare import load_static

    graph, _ = load_static("zoo:llama-tiny-decode", 1)
    found, decisions = blocks(optimize_graph(graph, 2), 2)
    assert found == [] and len(decisions) == 2  # its keys join the cache, an input
    assert all("does not come from a projection" in d["reason"] for d in decisions)

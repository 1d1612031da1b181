"""A model over several chips: tensor or pipeline parallel, transfers, all chips
simulated together."""

import json

import pytest

from npuc.compiler.cli import main
from npuc.compiler.multichip.compile import compile_chips
from npuc.compiler.multichip.simulate import simulate_chips, verify_chips
from npuc.ir.errors import NpucError


@pytest.mark.parametrize("chips,parallel", [(2, "auto"), (4, "auto"), (2, "pipeline"),
                                            (4, "pipeline")])
def test_a_small_decoder_over_chips_is_bit_identical_to_the_single_chip_ir(chips, parallel):
    r = verify_chips("zoo:decoder-tiny", "rngd", chips, parallel=parallel)
    assert r["passed"], r["outputs"]
    assert all(m["identical_to_single_chip_ir"] for m in r["outputs"].values())
    m = r["manifest"]
    assert m["parallelism"] == ("tensor" if parallel == "auto" else "pipeline")
    assert len(m["stages"]) == chips and all(s["nodes"] > 0 for s in m["stages"])
    if m["parallelism"] == "tensor":  # one collective per segment, the head's ends it
        # 2 chips: the attention split by heads and the MLP, an all_reduce each per layer;
        # 4 chips: 2 key/value heads do not divide, Q/K/V/O are each gathered
        count = 5 if chips == 2 else 11
        assert m["segments"] == count and len(m["transfers"]) == count
        whole = compile_chips("zoo:decoder-tiny", "rngd", 1).summaries[0]["weights_bytes"]
        assert all(s["weights_bytes"] < whole for s in m["stages"])


def test_every_recv_has_its_send_priced_from_the_link():
    result = compile_chips("zoo:decoder-tiny", "rngd", 3, parallel="pipeline")
    sends = {(c["tensor"], c["to"]) for k, p in enumerate(result.programs)
             for c in p["commands"] if c["op"] == "send"}
    recvs = {(c["tensor"], k) for k, p in enumerate(result.programs)
             for c in p["commands"] if c["op"] == "recv"}
    assert sends == recvs and sends
    link = result.target.link
    for move in result.manifest["transfers"]:
        assert move["from"] < move["to"]
        assert move["seconds"] == pytest.approx(link.latency_s +
                                                move["bytes"] / link.bandwidth_bytes_per_s)
    # a program that receives what nobody sent cannot run
    result.programs[0]["commands"] = [c for c in result.programs[0]["commands"]
                                      if c["op"] != "send"]
    with pytest.raises(NpucError, match="which has not sent it"):
        simulate_chips(result.programs, result.weights, {"input_ids": [[1] * 16]})


def test_compile_chips_from_the_command_line_is_deterministic(tmp_path, capsys):
    for out in ("a", "b"):
        assert main(["compile", "zoo:resnet-tiny", "--target", "rngd", "--chips", "2",
                     "-o", str(tmp_path / out)]) == 0
    assert "chip 1:" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "a").iterdir() if p.name != ".npuc-output")
    assert names == ["chip0-program.json", "chip0-summary.json", "chip0-weights.bin",
                     "chip1-program.json", "chip1-summary.json", "chip1-weights.bin",
                     "chips.json", "decisions.json"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # each chip's scheduling decisions are there, under its stage's names
    decisions = json.loads((tmp_path / "a" / "decisions.json").read_text())
    stages = {d["stage"] for d in decisions}
    assert {"partition", "tiling", "quantize"} <= stages, stages


def test_a_chip_without_a_link_cannot_be_split(capsys):
    assert main(["compile", "zoo:resnet-tiny", "--target", "cpu", "--chips", "2", "-o",
                 "/nonexistent/x"]) == 2
    assert "declares no chip-to-chip link" in capsys.readouterr().err


def test_tensor_parallel_gathers_are_priced_as_a_ring():
    result = compile_chips("zoo:decoder-tiny", "rngd", 4)
    link = result.target.link
    gathers = [c for c in result.programs[1]["segments"][0]["commands"]
               if c["op"] == "all_gather"]
    assert len(gathers) == 1 and gathers[0]["chips"] == 4
    g = gathers[0]
    assert g["seconds"] == pytest.approx(3 * (link.latency_s + g["bytes"] / 4 /
                                              link.bandwidth_bytes_per_s))


def test_the_mlp_is_split_by_columns_then_rows_and_joined_by_an_all_reduce():
    result = compile_chips("zoo:decoder-tiny", "rngd", 4)
    link = result.target.link
    reduces = [c for seg in result.programs[2]["segments"] for c in seg["commands"]
               if c["op"] == "all_reduce"]
    assert len(reduces) == 2 and all(c["order"] == "chip" for c in reduces)  # one a layer
    for c in reduces:  # a ring: reduce-scatter then all-gather, 1/4 of the tensor a hop
        assert c["tensor"].endswith("down_proj/MatMul_output_0")
        assert c["seconds"] == pytest.approx(6 * (link.latency_s + c["bytes"] / 4 /
                                                  link.bandwidth_bytes_per_s))
    seg = next(s for s in result.programs[2]["segments"]
               if any(c["op"] == "all_reduce" for c in s["commands"]))
    shapes = {t: v["shape"] for t, v in seg["tensors"].items()}
    assert shapes["model.layers.0.mlp.gate_proj.weight_bf16.chip2"] == [64, 32]
    assert shapes["model.layers.0.mlp.down_proj.weight_bf16.chip2"] == [32, 64]
    assert shapes["/model/layers.0/mlp/Mul_output_0"][-1] == 32  # never gathered


def test_compile_says_how_many_attentions_were_split_by_heads(tmp_path, capsys):
    assert main(["compile", "zoo:decoder-tiny", "--target", "rngd", "--chips", "4",
                 "-o", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "attention split by heads: 0 of 2; /model/layers.0/self_attn/MatMul_1: 4 query " \
        "heads and 2 key/value heads do not divide by 4 chips" in out

"""A model over several chips: pipeline stages, transfers, all chips simulated together."""

import pytest

from npuc.compiler.cli import main
from npuc.compiler.multichip.compile import compile_chips
from npuc.compiler.multichip.simulate import simulate_chips, verify_chips
from npuc.ir.errors import NpucError


@pytest.mark.parametrize("chips", [2, 4])
def test_a_small_decoder_over_chips_is_bit_identical_to_the_single_chip_ir(chips):
    r = verify_chips("zoo:llama-tiny", "rngd", chips)
    assert r["passed"], r["outputs"]
    assert all(m["identical_to_single_chip_ir"] for m in r["outputs"].values())
    stages = r["manifest"]["stages"]
    assert len(stages) == chips and all(s["nodes"] > 0 for s in stages)


def test_every_recv_has_its_send_priced_from_the_link():
    result = compile_chips("zoo:llama-tiny", "rngd", 3)
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
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["chip0-program.json", "chip0-summary.json", "chip0-weights.bin",
                     "chip1-program.json", "chip1-summary.json", "chip1-weights.bin",
                     "chips.json"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_chip_without_a_link_cannot_be_split(capsys):
    assert main(["compile", "zoo:resnet-tiny", "--target", "cpu", "--chips", "2", "-o",
                 "/nonexistent/x"]) == 2
    assert "declares no chip-to-chip link" in capsys.readouterr().err

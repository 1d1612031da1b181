"""The chip-to-chip link and board power of chip files."""

from pathlib import Path

import pytest

from npuc.ir.errors import NpucError
from npuc.targets import get_target, load_target

RNGD = Path(get_target("rngd").source)


def test_rngd_link_is_pcie_gen5_x16_peer_to_peer():
    t = get_target("rngd")
    assert t.link.kind == "PCIe Gen5 x16 peer-to-peer" and t.link.topology == "ring"
    # 32 GT/s x 16 lanes with 128b/130b coding, one way
    assert t.link.bandwidth_bytes_per_s == pytest.approx(32e9 * 16 * 128 / 130 / 8, rel=1e-3)
    assert t.is_estimated("link.latency_s") and not t.is_estimated("link.bandwidth_bytes_per_s")
    assert t.board_watts == 150


def test_every_npu_declares_a_link_and_power_the_cpu_none():
    from npuc.targets import list_targets

    for t in list_targets():
        if t.kind == "cpu":
            assert t.link is None and t.board_watts is None
        else:
            assert t.link is not None and t.board_watts > 0, t.name


def test_host_topology_crosses_the_link_twice():
    warboy, rngd = get_target("warboy-2pe").link, get_target("rngd").link
    assert warboy.seconds(1e6) == pytest.approx(2 * (2e-6 + 1e6 / 15.75e9))
    assert rngd.seconds(1e6, hops=3) == pytest.approx(3 * (2e-6 + 1e6 / 63e9))
    assert rngd.seconds(0) == 0.0


def test_a_negative_bandwidth_is_refused_with_its_line(tmp_path):
    text = RNGD.read_text().replace("bandwidth_bytes_per_s = 63.0e9",
                                    "bandwidth_bytes_per_s = -1.0")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "= -1.0" in s)
    with pytest.raises(NpucError, match=rf"bad.toml:{line}: 'bandwidth_bytes_per_s' in "
                                        r"\[link\] must be positive"):
        load_target(path)


def test_an_unknown_topology_is_refused(tmp_path):
    text = RNGD.read_text().replace('topology = "ring"', 'topology = "mesh"')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(NpucError, match="must be one of: ring, host"):
        load_target(path)

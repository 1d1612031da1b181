"""A vendor package's lowering hook: docs/targets.md's example, installed as a plugin."""

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from npuc.compiler.lower.hooks import apply_hooks
from npuc.ir.errors import NpucError

DOC = Path(__file__).resolve().parents[2] / "docs" / "targets.md"


def _install_example(tmp_path: Path, monkeypatch) -> Path:
    """The docs' example package, found through a dist-info entry point on sys.path;
    the path of its chip file."""
    doc = DOC.read_text()
    section = doc.split("### Changing how an operator is lowered")[1]
    package = tmp_path / "acme_npuc"
    package.mkdir()
    (package / "__init__.py").write_text(
        re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1))
    chip = package / "acme-n1.toml"
    chip.write_text(re.search(r"```toml\n(.*?)```", doc.split("## Worked example")[1],
                              re.DOTALL).group(1))
    dist = tmp_path / "acme_npuc-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-npuc\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[npuc.targets]\nacme-n1 = acme_npuc:target\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return chip


def _op_of(program, cmd):
    return program["nodes"][cmd["node"]]["op_type"] if "node" in cmd else None


def test_the_vendor_hook_changes_how_maxpool_is_lowered_and_nothing_else(tmp_path,
                                                                          monkeypatch):
    from npuc.compiler import zoo
    from npuc.compiler.driver import compile
    from npuc.compiler.executor.simulator import simulate

    chip = _install_example(tmp_path, monkeypatch)
    try:
        hooked = compile("zoo:resnet-tiny", "acme-n1", quantize="none").program
        plain_result = compile("zoo:resnet-tiny", str(chip), quantize="none")
    finally:
        sys.modules.pop("acme_npuc", None)
    plain = plain_result.program
    pools = [c for c in plain["commands"] if _op_of(plain, c) == "MaxPool"]
    assert pools and all(c["engine"] == "vector" for c in pools)
    expected = []
    for c in plain["commands"]:
        if _op_of(plain, c) == "MaxPool" and c["op"] == "compute":
            expected += [{"op": "sync", "group": c["group"], "wait": "compute"},
                         dict(c, engine="dma")]
        else:
            expected.append(c)
    assert hooked["commands"] == expected
    feeds = zoo.sample_inputs(plain_result.proto, batch=1, seed=0)
    want = simulate(plain, plain_result.weights, feeds)
    got = simulate(hooked, plain_result.weights, feeds)
    assert all(np.array_equal(got[k], want[k]) for k in want)


def _node(op="Relu", domain=""):
    return SimpleNamespace(op_type=op, domain=domain, describe=lambda: f"{op} node 'n'")


def _target(hooks):
    return SimpleNamespace(name="acme-n1", lowering=hooks)


def test_a_hook_sees_only_its_operators_compute_commands():
    seen = []
    commands = [{"op": "dma_load", "group": "g0"},
                {"op": "compute", "group": "g0", "node": "r", "engine": "vector"},
                {"op": "compute", "group": "g0", "node": "f", "engine": "mac"}]
    nodes = {"r": _node("Relu"), "f": _node("FusedConv", "npuc")}

    def hook(node, cmd):
        seen.append(node.op_type)
        return [dict(cmd, engine="mac")]

    out = apply_hooks(_target({"npuc::FusedConv": hook}), commands, nodes)
    assert seen == ["FusedConv"]
    assert out == commands  # FusedConv was on the mac engine already
    out = apply_hooks(_target({"Relu": hook}), commands, nodes)
    assert out[1]["engine"] == "mac" and commands[1]["engine"] == "vector"


@pytest.mark.parametrize("hook, message", [
    (lambda node, cmd: cmd, "returned a dict; it must return a list of commands"),
    (lambda node, cmd: [{"op": "jump"}], "which is not a command"),
    (lambda node, cmd: 1 / 0, "failed on Relu node 'n': ZeroDivisionError"),
])
def test_a_broken_hook_is_a_one_line_error_naming_chip_op_and_node(hook, message):
    commands = [{"op": "compute", "group": "g0", "node": "r", "engine": "vector"}]
    with pytest.raises(NpucError, match="acme-n1's lowering hook for Relu") as e:
        apply_hooks(_target({"Relu": hook}), commands, {"r": _node()})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_with_lowering_adds_hooks_and_refuses_what_is_not_a_function():
    from npuc.targets import get_target

    warboy = get_target("warboy")
    assert not warboy.lowering
    hooked = warboy.with_lowering({"Relu": lambda node, cmd: [cmd]})
    assert set(hooked.lowering) == {"Relu"} and not warboy.lowering
    with pytest.raises(TypeError, match="the lowering hook for Relu is a str"):
        warboy.with_lowering({"Relu": "fast"})

"""Finding targets: shipped names, entry points, paths."""

from pathlib import Path

import pytest

from npuc.ir.errors import NpucError
from npuc.targets import get_target, list_targets, registry
from npuc.targets.loader import parse_target


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(NpucError) as err:
        get_target("warboy3")
    assert "unknown target 'warboy3'; did you mean warboy or warboy-2pe? known targets: atom, " \
        "cpu, generic-npu, rngd" in \
        str(err.value)


def test_shipped_targets_are_loaded_once():
    assert get_target("rngd") is get_target("rngd")


class FakeEntryPoint:
    def __init__(self, name, obj):
        self.name, self.value, self.obj = name, f"fake:{name}", obj

    def load(self):
        return self.obj


def test_entry_points_give_a_callable_or_a_path(monkeypatch, tmp_path, tiny_text):
    path = tmp_path / "pathchip.toml"
    path.write_text(tiny_text.replace('name = "tiny"', 'name = "pathchip"'))
    plugins = {"callchip": FakeEntryPoint("callchip", lambda: parse_target(
                   tiny_text.replace('name = "tiny"', 'name = "callchip"'), "<plugin>")),
               "pathchip": FakeEntryPoint("pathchip", str(path))}
    monkeypatch.setattr(registry, "_entry_points", lambda: plugins)
    assert get_target("callchip").name == "callchip"
    assert get_target("pathchip").source == str(path)
    names = [t.name for t in list_targets()]
    assert "callchip" in names and "pathchip" in names and "rngd" in names


def test_a_broken_plugin_is_named(monkeypatch):
    def broken():
        raise RuntimeError("no chip here")

    monkeypatch.setattr(registry, "_entry_points",
                        lambda: {"bad": FakeEntryPoint("bad", broken)})
    with pytest.raises(NpucError, match="target plugin 'bad' .* failed to load: RuntimeError"):
        get_target("bad")


def test_shipped_files_are_package_data():
    for name in registry.shipped_names():
        assert Path(get_target(name).source).name == f"{name}.toml"

"""Shared helpers: a chip with a tiny SRAM, so that even tiny models are tiled."""

import pytest

from npuc.targets import get_target


@pytest.fixture(scope="session")
def small_sram_target(tmp_path_factory):
    """warboy-2pe with 12 KB of SRAM (every test model then needs several tiles)."""
    src = get_target("warboy-2pe").source
    text = open(src, encoding="utf-8").read()
    lines = []
    for line in text.splitlines():
        if line.startswith("sram_bytes"):
            line = "sram_bytes = 12000"
        elif line.startswith("name ="):
            line = 'name = "small-sram"'
        lines.append(line)
    path = tmp_path_factory.mktemp("chips") / "small-sram.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)

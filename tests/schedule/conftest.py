"""Shared helpers: chips with a tiny SRAM, so that even tiny models are tiled."""

import pytest

from npuc.targets import get_target


def write_small_sram_chip(folder, chip: str, sram_bytes: int = 12000, name=None) -> str:
    """A copy of shipped ``chip`` with ``sram_bytes`` of SRAM, written into ``folder``
    (named ``name``, by default as the chip it copies)."""
    text = open(get_target(chip).source, encoding="utf-8").read()
    lines = []
    for line in text.splitlines():
        if line.startswith("sram_bytes"):
            line = f"sram_bytes = {sram_bytes}"
        elif line.startswith("name =") and name:
            line = f'name = "{name}"'
        lines.append(line)
    path = folder / f"small-sram-{chip}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def small_sram_target(tmp_path_factory):
    """warboy-2pe with 12 KB of SRAM (every test model then needs several tiles)."""
    return write_small_sram_chip(tmp_path_factory.mktemp("chips"), "warboy-2pe",
                                 name="small-sram")


@pytest.fixture(scope="session")
def small_sram_chip(tmp_path_factory):
    """``small_sram_chip(name)``: a shipped chip with 12 KB of SRAM."""
    folder = tmp_path_factory.mktemp("small-chips")
    return lambda chip: write_small_sram_chip(folder, chip)

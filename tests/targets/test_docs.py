"""docs/targets.md stays true: its schema reference is the schema, its example loads."""

import re
from pathlib import Path

import pytest

from npuc.targets import get_target
from npuc.targets.constraints import CHECKS
from npuc.targets.schema import iter_keys, reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "targets.md"


@pytest.fixture(scope="module")
def doc():
    return DOC.read_text()


def test_the_schema_reference_is_generated_from_the_schema(doc):
    section = doc.split("<!-- schema-reference:start -->\n")[1].split(
        "<!-- schema-reference:end -->")[0]
    assert section == reference_markdown(), (
        "docs/targets.md's schema reference is out of date: paste reference_markdown()")


def test_every_schema_key_is_documented(doc):
    for path, _ in iter_keys():
        assert f"| `{path}` |" in doc, path


def test_every_check_is_documented(doc):
    for key, check in CHECKS.items():
        assert f"| `{key}` | {check.doc} |" in doc, key


def test_the_worked_example_loads_by_path(doc, tmp_path):
    example = doc.split("## Worked example")[1]
    text = re.search(r"```toml\n(.*?)```", example, re.DOTALL).group(1)
    path = tmp_path / "acme-n1.toml"
    path.write_text(text)
    target = get_target(str(path))
    assert target.name == "acme-n1"
    assert target.peak_ops("int8") == 3.2768e12
    assert target.operators["Conv"].limits[0].message == "Conv group must be at most 64"
    assert target.is_estimated("fusion.epilogues")


def _example_file(doc, tmp_path):
    example = doc.split("## Worked example")[1]
    path = tmp_path / "acme-n1.toml"
    path.write_text(re.search(r"```toml\n(.*?)```", example, re.DOTALL).group(1))
    return str(path)


def test_the_worked_example_compiles_and_quantizes_by_path(doc, tmp_path, capsys):
    from npuc.compiler.cli import main

    chip = _example_file(doc, tmp_path)
    assert main(["compile", "zoo:resnet-tiny", "--target", chip, "--calibration", "random:2",
                 "-o", str(tmp_path / "out")]) == 0
    assert main(["quantize", "zoo:resnet-tiny", "--target", chip, "--calibration", "random:2",
                 "-o", str(tmp_path / "q.npuir")]) == 0
    assert "int8 for acme-n1" in capsys.readouterr().out


def test_a_custom_chips_quantization_table_is_the_one_used(tmp_path):
    from npuc import zoo
    from npuc.compiler.frontend.load import load_model
    from npuc.compiler.quantize import quantize
    from npuc.compiler.quantize.api import random_calibration
    from npuc.targets.registry import _chip_files

    text = _chip_files()["warboy"].read_text()
    assert 'weights = "per-channel"' in text
    chip = tmp_path / "warboy-per-tensor.toml"
    chip.write_text(text.replace('weights = "per-channel"', 'weights = "per-tensor"')
                    .replace('name = "warboy"', 'name = "warboy-per-tensor"'))
    graph = load_model(zoo.build("resnet-tiny"))
    scheme = {}
    for path in (str(chip), "warboy"):
        q = quantize(load_model(zoo.build("resnet-tiny")), path, random_calibration(graph, 2))
        scheme[path] = q.meta["quantize"]["scheme"]
    assert scheme[str(chip)].target == "warboy-per-tensor"
    assert not scheme[str(chip)].weights_per_channel and scheme["warboy"].weights_per_channel

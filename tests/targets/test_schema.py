"""Reading chip files strictly: every mistake names the file and the line."""

import re
from pathlib import Path

import pytest

from npuc.ir.errors import NpucError
from npuc.targets import get_target, load_target
from npuc.targets.loader import parse_target
from npuc.targets.toml_lines import key_lines

SHIPPED = Path(get_target("warboy-2pe").source)


def copy(tmp_path, text, name="mychip.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def line_number(text, needle):
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_renamed_copy_loads_by_path(tmp_path):
    text = SHIPPED.read_text().replace('name = "warboy-2pe"', 'name = "my-warboy"')
    path = copy(tmp_path, text, "my-warboy.toml")
    target = get_target(str(path))
    assert target.name == "my-warboy" and target.source == str(path)
    assert target.peak_ops("int8") == 64e12
    assert get_target(path).name == "my-warboy"  # a Path works too


def test_a_duplicated_key_is_refused_with_its_line(tmp_path):
    text = SHIPPED.read_text().replace("sram_banks = 128", "sram_banks = 128\nsram_banks = 64")
    path = copy(tmp_path, text)
    with pytest.raises(NpucError) as err:
        load_target(path)
    line = line_number(text, "sram_banks = 64")
    assert str(err.value) == f"{path}:{line}: duplicated key 'sram_banks'"


def test_a_duplicated_table_is_refused_with_its_line(tmp_path):
    text = SHIPPED.read_text() + "\n[memory]\nsram_banks = 1\n"
    path = copy(tmp_path, text)
    with pytest.raises(NpucError, match=re.escape(f"{path}:{len(text.splitlines()) - 1}: "
                                                  "duplicated table [memory]")):
        load_target(path)


def test_an_unknown_key_is_refused_with_its_line(tmp_path):
    text = SHIPPED.read_text().replace("sram_banks = 128", "sram_kib = 32768")
    path = copy(tmp_path, text)
    with pytest.raises(NpucError) as err:
        load_target(path)
    line = line_number(text, "sram_kib")
    assert str(err.value).startswith(f"{path}:{line}: unknown key 'sram_kib' in [memory]; "
                                     "expected one of: sram_bytes, sram_banks, ")


def test_an_unknown_key_in_a_limit_names_the_limit(tmp_path):
    text = SHIPPED.read_text().replace("max = 128\n", "max = 128\nmaximum = 3\n")
    path = copy(tmp_path, text)
    with pytest.raises(NpucError, match=re.escape(
            f"{path}:{line_number(text, 'maximum')}: unknown key 'maximum' in "
            "[[operators.limit]]")):
        load_target(path)


def test_a_wrong_type_is_refused_with_its_line(tmp_path, tiny_text):
    text = tiny_text.replace("sram_bytes = 65536", 'sram_bytes = "64 KiB"')
    with pytest.raises(NpucError) as err:
        parse_target(text, "t.toml")
    line = line_number(text, "sram_bytes")
    assert str(err.value) == (f"t.toml:{line}: 'sram_bytes' in [memory] must be an integer, "
                              "not a string ('64 KiB')")


def test_a_missing_key_names_its_table(tiny_text):
    text = tiny_text.replace("sram_banks = 2\n", "")
    with pytest.raises(NpucError, match=rf"t.toml:{line_number(text, '[memory]')}: "
                                        r"missing key 'sram_banks' in \[memory\]"):
        parse_target(text, "t.toml")


def test_a_bad_choice_lists_the_choices(tiny_text):
    text = tiny_text.replace('preferred = "int8"', 'preferred = "int9"')
    with pytest.raises(NpucError, match="'preferred' in .quantization. must be one of: int4, "
                                        "int8, fp8, fp16, bf16, fp32; it is 'int9'"):
        parse_target(text, "t.toml")


def test_a_newer_schema_version_is_refused(tiny_text):
    with pytest.raises(NpucError, match="t.toml:2: schema_version 2 is not supported"):
        parse_target(tiny_text.replace("schema_version = 1", "schema_version = 2"), "t.toml")


def test_syntax_errors_keep_their_line():
    with pytest.raises(NpucError, match=r"t.toml:3: not valid TOML"):
        parse_target("schema_version = 1\nname = 'x'\ndescription = \n", "t.toml")


def test_an_estimate_needs_an_assumption(tiny_text):
    text = tiny_text.replace('estimated = ["compute"]', 'estimated = ["compute", "memory"]')
    with pytest.raises(NpucError, match="'memory' is estimated but \\[assumptions\\] has no "
                                        "text for it"):
        parse_target(text, "t.toml")


def test_an_estimate_must_name_a_key(tiny_text):
    text = tiny_text.replace('estimated = ["compute"]', 'estimated = ["compute.clok_hz"]')
    with pytest.raises(NpucError, match="estimated names 'compute.clok_hz', which is not a key"):
        parse_target(text, "t.toml")


def test_a_limit_on_an_unsupported_op_is_refused(tiny_text):
    text = tiny_text + '\n[[operators.limit]]\nop = "Softmax"\nbatch_max = 2\nmessage = "x"\n'
    with pytest.raises(NpucError, match=rf"t.toml:{line_number(text, 'Softmax')}: a limit names "
                                        "Softmax, which is not in operators.supported"):
        parse_target(text, "t.toml")


def test_a_limit_needs_exactly_one_check(tiny_text):
    text = tiny_text + ('\n[[operators.limit]]\nop = "Conv"\nattr = "group"\nmax = 2\n'
                        'batch_max = 2\nmessage = "x"\n')
    with pytest.raises(NpucError, match="a limit needs exactly one of: .*; it has more than "
                                        "one check key \\(max, batch_max\\)"):
        parse_target(text, "t.toml")


def test_a_limit_needs_a_message(tiny_text):
    text = tiny_text + '\n[[operators.limit]]\nop = "Conv"\nattr = "group"\nmax = 2\n'
    with pytest.raises(NpucError, match=r"missing key 'message' in \[\[operators.limit\]\]"):
        parse_target(text, "t.toml")


def test_a_missing_file_is_one_line():
    with pytest.raises(NpucError, match="target file nowhere/chip.toml does not exist"):
        get_target("nowhere/chip.toml")


def test_key_lines_follow_tables_arrays_and_strings():
    text = ('a = "x # = y"\n[t]\nb = 1\n[[rows]]\nc = 2\n[[rows]]\nc = 3\n'
            'd = [\n  { e = 1 },\n  { e = 2 },\n]\n')
    lines = key_lines(text)
    assert lines[("a",)] == 1 and lines[("t", "b")] == 3
    assert lines[("rows", 0, "c")] == 5 and lines[("rows", 1, "c")] == 7
    assert lines[("rows", 1, "d", 1, "e")] == 10

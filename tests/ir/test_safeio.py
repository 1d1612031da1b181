"""The safe-output helper: atomic files and folders, markers, leftovers, full disks."""

import errno
import os

import pytest

from npuc.ir import safeio
from npuc.ir.errors import NpucError
from npuc.ir.limits import parse_size


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "o.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with safeio.atomic_file(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["o.txt"]


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(NpucError, match="no space left writing"):
        safeio.write_file(tmp_path / "o.bin", b"x" * 100)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert os.listdir(tmp_path) == []


def test_a_symlink_at_the_destination_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.symlink(victim, tmp_path / "o.txt")
    safeio.write_file(tmp_path / "o.txt", "new")
    assert victim.read_text() == "keep"
    assert (tmp_path / "o.txt").read_text() == "new" and not (tmp_path / "o.txt").is_symlink()


def test_output_folders_are_replaced_only_when_npuc_wrote_them(tmp_path):
    out = tmp_path / "out"
    safeio.write_dir(out, {"a.txt": "1"})
    assert safeio.is_output_folder(str(out))
    safeio.write_dir(out, {"b.txt": "2"})
    assert sorted(os.listdir(out)) == [".npuc-output", "b.txt"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(NpucError, match="is not an npuc output folder"):
        safeio.write_dir(mine, {"a.txt": "1"})
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "out"]


def test_leftovers_of_a_killed_run_are_cleaned_and_never_block(tmp_path):
    dead = tmp_path / ".out.npuc-999999999-abc"
    dead.mkdir()
    (dead / ".npuc-output").write_bytes(safeio.MARKER_TEXT)
    stale = tmp_path / ".o.txt.npuc-999999999-xyz"
    stale.write_text("half")
    safeio.write_dir(tmp_path / "out", {"a": "1"})
    safeio.write_file(tmp_path / "o.txt", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.txt", "out"]


@pytest.mark.parametrize("path", ["/dev/null", "/proc/self/x", "/sys/x"])
def test_system_paths_are_refused(path):
    with pytest.raises(NpucError):
        safeio.check_output_file(path)


def test_current_folder_and_inputs_folder_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NpucError, match="current folder"):
        safeio.check_output_dir(".")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.onnx").write_bytes(b"")
    with pytest.raises(NpucError, match="m.onnx"):
        safeio.check_output_dir("sub", protect=["sub/m.onnx"])


def test_a_fifo_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "f")
    with pytest.raises(NpucError, match="not a regular file"):
        safeio.check_input_file(tmp_path / "f")


@pytest.mark.parametrize("text,value", [("4G", 4 << 30), ("512M", 512 << 20), ("1000", 1000),
                                        ("2GiB", 2 << 30)])
def test_sizes_parse(text, value):
    assert parse_size(text, "x") == value


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.5", "nan", ""])
def test_bad_sizes_are_refused(text):
    with pytest.raises(NpucError):
        parse_size(text, "x")


def test_an_unwritable_place_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """A folder that cannot be written in (read-only file system, no permission) is named
    at once, before the compile runs; the check looks at the nearest existing folder."""
    from npuc.compiler import pipeline
    from npuc.compiler.cli import main

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if os.fspath(p).startswith(
        os.fspath(locked)) else real(p, m, **k))
    with pytest.raises(NpucError, match="cannot write in .*locked"):
        safeio.check_output_dir(locked / "a" / "b")
    monkeypatch.setattr(pipeline, "_pipeline", lambda *a, **k: pytest.fail("compiled first"))
    assert main(["compile", "zoo:bert-tiny", "--target", "rngd", "-o",
                 str(locked / "out")]) == 2
    assert "cannot write in" in capsys.readouterr().err
    assert not (locked / "out").exists()

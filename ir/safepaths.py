"""The checks on a path the user gave, before npuc reads or writes anything there.

An output file must be a regular file (or not exist yet) in an existing folder outside
``/proc``, ``/sys`` and ``/dev``; an output folder must be new, empty or one npuc wrote
(it holds :data:`MARKER`), never the current folder, a parent of it, or a folder holding
one of the user's inputs; an input must be a regular file. :mod:`npuc.ir.safeio` writes
through these checks.
"""

from __future__ import annotations

import os
import stat

from .errors import NpucError

MARKER = ".npuc-output"
MARKER_TEXT = b"npuc output folder: npuc may replace this folder when asked to write it\n"
_SYSTEM = ("/proc", "/sys", "/dev")


def _under_system(path: str) -> bool:
    return any(path == s or path.startswith(s + os.sep) for s in _SYSTEM)


def _check_parent(path: str, shown: str) -> None:
    """The existing ancestors of ``path`` are folders, and none is a system folder."""
    real = os.path.realpath(os.path.dirname(path))
    if _under_system(real):
        raise NpucError(f"{shown}: npuc does not write under {real}")
    probe = real
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise NpucError(f"{shown}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):  # found now, not after the work
        why = "a read-only file system" if os.statvfs(probe).f_flag & os.ST_RDONLY else \
            "no permission to write there"
        raise NpucError(f"{shown}: cannot write in {probe} ({why})")


def check_output_file(path) -> str:
    """Refuse an output file npuc must not write; return its absolute path."""
    shown = os.fspath(path)
    if not shown:
        raise NpucError("an empty output file name was given")
    apath = os.path.abspath(shown)
    if _under_system(os.path.realpath(apath)):
        raise NpucError(f"{shown}: npuc does not write devices or under /proc, /sys or /dev")
    folder = os.path.dirname(apath)
    if not os.path.isdir(folder):
        raise NpucError(f"{shown}: the folder {folder} does not exist")
    _check_parent(apath, shown)
    if os.path.lexists(apath):
        mode = os.lstat(apath).st_mode
        if stat.S_ISDIR(mode):
            raise NpucError(f"{shown}: is a folder; give a file name")
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise NpucError(f"{shown}: is not a regular file (a device, FIFO or socket); "
                            "npuc writes only regular files")
    return apath


def is_output_folder(path: str) -> bool:
    """Whether ``path`` is a folder npuc wrote (it holds the marker file)."""
    marker = os.path.join(path, MARKER)
    try:
        if not stat.S_ISREG(os.lstat(marker).st_mode):
            return False
        with open(marker, "rb") as f:
            return f.read(len(MARKER_TEXT)) == MARKER_TEXT
    except OSError:
        return False


def check_output_dir(path, protect=()) -> str:
    """Refuse an output folder npuc must not replace; return its real absolute path.

    ``protect`` names files the user gave (the model, calibration data): a folder holding
    one of them is never replaced."""
    shown = os.fspath(path)
    if not shown:
        raise NpucError("an empty output folder name was given")
    real = os.path.realpath(os.path.abspath(shown))
    if _under_system(real):
        raise NpucError(f"{shown}: npuc does not write under /proc, /sys or /dev")
    cwd = os.path.realpath(os.getcwd())
    if real == cwd or cwd.startswith(real.rstrip(os.sep) + os.sep) or real == os.sep:
        raise NpucError(f"{shown}: is the current folder or one of its parents; give a new "
                        "folder for the output")
    for p in protect:
        if isinstance(p, (str, os.PathLike)) and not os.fspath(p).startswith("zoo:"):
            rp = os.path.realpath(os.fspath(p))
            if rp == real or rp.startswith(real + os.sep):
                raise NpucError(f"{shown}: holds {os.fspath(p)}, an input; give a new folder "
                                "for the output")
    _check_parent(real, shown)
    if os.path.lexists(real):
        if not os.path.isdir(real):
            raise NpucError(f"{shown}: exists and is not a folder")
        if not is_output_folder(real) and os.listdir(real):
            raise NpucError(f"{shown} exists and is not an npuc output folder (npuc replaces "
                            "only folders it wrote); give a new folder or remove it")
    return real


def check_input_file(path) -> str:
    """Refuse to read anything but a regular file (a FIFO would hang the reader, a device
    would never end); return the path."""
    shown = os.fspath(path)
    try:
        mode = os.stat(shown).st_mode
    except FileNotFoundError:
        raise NpucError(f"{shown}: no such file") from None
    except OSError as e:
        raise NpucError(f"{shown}: cannot read: {e.strerror}") from None
    if stat.S_ISDIR(mode):
        raise NpucError(f"{shown}: is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise NpucError(f"{shown}: is not a regular file (a device, FIFO or socket); npuc "
                        "reads only regular files")
    return shown

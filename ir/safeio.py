"""Every file and folder npuc writes goes through this module.

The rules, so that npuc never loses a user's file:

- a temporary file or folder is created exclusively (``mkstemp``/``mkdtemp``, which never
  follow a symlink) in the destination's own folder, written whole, then renamed over the
  destination: at every instant the destination holds the old or the new content, whole;
- an output *folder* replaces an existing folder only when npuc wrote it (it holds the
  marker file :data:`MARKER`) or it is empty; the current folder, its parents and folders
  holding the model are never replaced;
- devices, FIFOs, sockets, and anything under ``/proc``, ``/sys`` or ``/dev`` are refused
  as outputs; a file where a folder is needed (or the reverse) is refused;
- a full disk is reported as ``no space left writing PATH`` and the temporary is removed;
- leftovers of a killed run (``.NAME.npuc-PID-*`` beside the destination, whose process is
  gone) are removed by the next run into the same destination, so they never block it.

It lives in ``npuc.ir`` so that every layer (the text IR writer included) can use it. The
checks of a path before anything is read or written are :mod:`npuc.ir.safepaths`
(re-exported here).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
import tempfile
import zipfile
from contextlib import contextmanager

from .errors import NpucError
from .safepaths import (  # noqa: F401  (re-exported: callers check and write through safeio)
    MARKER,
    MARKER_TEXT,
    check_input_file,
    check_output_dir,
    check_output_file,
    is_output_folder,
)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# -- errors ----------------------------------------------------------------------------

def os_error(e: OSError, path: str) -> NpucError:
    """The one-line message for an error writing ``path``."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return NpucError(f"no space left writing {path}")
    if e.errno == errno.EFBIG:
        return NpucError(f"no space left writing {path} (the file size limit was reached)")
    return NpucError(f"cannot write {path}: {e.strerror or e}")


# -- leftovers ---------------------------------------------------------------------------

def _prefix(base: str) -> str:
    return f".{base}.npuc-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _clean_leftovers(folder: str, base: str) -> None:
    """Remove temporaries of ``base`` left by runs that were killed."""
    prefix = _prefix(base)
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        path = os.path.join(folder, name)
        try:
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.unlink(path)
            elif stat.S_ISDIR(mode) and (is_output_folder(path) or not os.listdir(path)):
                shutil.rmtree(path)
        except OSError:
            pass


# -- files -----------------------------------------------------------------------------

@contextmanager
def atomic_file(path):
    """Open a temporary beside ``path`` for binary writing; on success it replaces ``path``.

    On any error the temporary is removed and ``path`` is left as it was."""
    apath = check_output_file(path)
    folder, base = os.path.split(apath)
    _clean_leftovers(folder, base)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_prefix(base)}{os.getpid()}-", dir=folder)
    except OSError as e:
        raise os_error(e, os.fspath(path)) from None
    f = os.fdopen(fd, "wb")
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        os.fchmod(f.fileno(), 0o666 & ~_umask())
        f.close()
        os.replace(tmp, apath)
    except OSError as e:
        _discard(f, tmp)
        raise os_error(e, os.fspath(path)) from None
    except BaseException:
        _discard(f, tmp)
        raise


def _discard(f, tmp: str) -> None:
    try:
        f.close()
    except OSError:
        pass
    try:
        os.unlink(tmp)
    except OSError:
        pass


def write_file(path, data) -> None:
    """Write ``data`` (bytes or text, UTF-8) to ``path`` atomically."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_file(path) as f:
        f.write(data)


def write_npz(path, arrays: dict) -> None:
    """Write named arrays as an ``.npz`` file (any names; no pickles; same bytes each time)."""
    import numpy as np

    with atomic_file(path) as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, arr in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with z.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)


# -- folders ---------------------------------------------------------------------------

_RENAME_EXCHANGE = 2


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where it is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


def _write(f, data) -> None:
    """Write text, bytes, or an object that writes itself (``write_to(file)``: a large
    file-backed blob, copied without being read into memory whole)."""
    if isinstance(data, str):
        f.write(data.encode("utf-8"))
    elif callable(getattr(data, "write_to", None)):
        data.write_to(f)
    else:
        f.write(data)


def write_dir(path, files: dict, protect=()) -> str:
    """Write ``files`` (name -> bytes, text or a file-backed blob) as the folder ``path``, all or nothing.

    Missing parent folders are created. An existing npuc output folder is swapped for the
    new one in one step; anything else that exists is refused. Returns the real path."""
    shown = os.fspath(path)
    real = check_output_dir(shown, protect)
    parent, base = os.path.split(real)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise NpucError(f"{shown}: cannot create the folder {parent}: {e.strerror}") from None
    _clean_leftovers(parent, base)
    try:
        tmp = tempfile.mkdtemp(prefix=f"{_prefix(base)}{os.getpid()}-", dir=parent)
    except OSError as e:
        raise os_error(e, shown) from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        for name, data in sorted({MARKER: MARKER_TEXT, **files}.items()):
            with open(os.path.join(tmp, name), "xb") as f:
                _write(f, data)
        if os.path.lexists(real):
            check_output_dir(shown, protect)  # still ours, just before the swap
            if not _exchange(tmp, real):
                old = tempfile.mkdtemp(prefix=f"{_prefix(base)}{os.getpid()}-", dir=parent)
                os.rename(real, os.path.join(old, "old"))
                os.rename(tmp, real)
                tmp = old
        else:
            os.rename(tmp, real)
            tmp = None
    except OSError as e:
        raise os_error(e, shown) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return real

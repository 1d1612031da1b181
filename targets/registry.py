"""Finding targets: the chips shipped with npuc, those of installed plugins, and files.

``get_target(x)`` accepts, in this order:

1. a :class:`~npuc.targets.model.Target` (returned as it is);
2. a path to a ``.toml`` chip file anywhere (anything ending in ``.toml`` or containing a
   path separator is taken as a path);
3. the name of a chip shipped in ``targets/chips/``;
4. the name of an entry point in the ``npuc.targets`` group. The entry point resolves to
   a callable returning a Target, to a Target, or to the path of a TOML file::

       [project.entry-points."npuc.targets"]
       mychip = "mychip_npuc:target"     # def target() -> npuc.targets.Target
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

from npuc.ir.errors import NpucError

from .loader import load_target, parse_target
from .model import Target

ENTRY_POINT_GROUP = "npuc.targets"


def _chip_files() -> dict[str, object]:
    """The shipped chip files, by name (the file name without ``.toml``)."""
    folder = resources.files("npuc.targets") / "chips"
    return {f.name[:-5]: f for f in folder.iterdir() if f.name.endswith(".toml")}


def shipped_names() -> list[str]:
    """Names of the chips shipped with npuc, sorted."""
    return sorted(_chip_files())


@cache
def _shipped(name: str) -> Target:
    resource = _chip_files()[name]
    with resources.as_file(resource) as path:
        return parse_target(Path(path).read_text(encoding="utf-8"), str(path))


def _entry_points() -> dict[str, object]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _from_entry_point(ep) -> Target:
    """Resolve an entry point to a Target (a callable, a Target or a TOML path)."""
    try:
        obj = ep.load()
        if callable(obj) and not isinstance(obj, Target):
            obj = obj()
    except NpucError:
        raise
    except Exception as exc:  # a plugin's own bug: say whose it is
        raise NpucError(f"target plugin '{ep.name}' ({ep.value}) failed to load: "
                        f"{type(exc).__name__}: {exc}") from exc
    if isinstance(obj, Target):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return load_target(obj)
    raise NpucError(f"target plugin '{ep.name}' ({ep.value}) gave a {type(obj).__name__}; "
                    "expected a Target or the path of a TOML chip file")


def _looks_like_path(text: str) -> bool:
    return text.endswith(".toml") or os.sep in text or "/" in text


def known_names() -> list[str]:
    """Every name ``get_target`` accepts: shipped chips and plugin entry points."""
    return sorted(set(shipped_names()) | set(_entry_points()))


def get_target(name_or_path) -> Target:
    """The target for a shipped name, a plugin name, or a path to a ``.toml`` file."""
    if isinstance(name_or_path, Target):
        return name_or_path
    if isinstance(name_or_path, os.PathLike):
        return load_target(name_or_path)
    text = str(name_or_path)
    if _looks_like_path(text):
        if not Path(text).is_file():
            raise NpucError(f"target file {text} does not exist")
        return load_target(text)
    if text in _chip_files():
        return _shipped(text)
    plugins = _entry_points()
    if text in plugins:
        return _from_entry_point(plugins[text])
    import difflib

    close = difflib.get_close_matches(text.lower(), known_names(), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise NpucError(f"unknown target '{text}'; {hint}known targets: "
                    f"{', '.join(known_names())} (or give the path of a .toml chip file)")


def list_targets() -> list[Target]:
    """All shipped and plugin targets, sorted by name (a shipped name wins a clash)."""
    found = {name: _shipped(name) for name in shipped_names()}
    for name, ep in _entry_points().items():
        if name not in found:
            found[name] = _from_entry_point(ep)
    return [found[n] for n in sorted(found)]

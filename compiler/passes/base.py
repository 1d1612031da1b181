"""What a pass is, and the registry that the command line and pipelines read.

A pass is a small dataclass: its ``name`` is what ``-p`` and pipelines spell, its
docstring's first line is what ``npuc opt --list-passes`` shows, and its options are its
fields (``fold-constants{max-elements=4096}``). ``run(graph)`` edits the graph in place
and returns True when it changed something (None when it cannot tell).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import os
import pkgutil
from typing import ClassVar

from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph

from .rewrite import apply_rules

_REGISTRY: dict[str, type["Pass"]] = {}


@dataclasses.dataclass
class Pass:
    """A transformation of a graph (subclasses say which)."""

    name: ClassVar[str] = ""

    def run(self, graph: Graph) -> bool | None:
        raise NotImplementedError

    @classmethod
    def description(cls) -> str:
        """The first line of the docstring: the pass in one sentence."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def __str__(self) -> str:
        opts = [f"{f.name.replace('_', '-')}={getattr(self, f.name)}"
                for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default]
        return self.name + ("{" + ",".join(opts) + "}" if opts else "")


@dataclasses.dataclass
class RulePass(Pass):
    """A pass that applies rewrite rules to a fixed point: its ``rules`` (Rule classes)."""

    rules: ClassVar[tuple] = ()

    def run(self, graph: Graph) -> bool:
        return apply_rules(graph, [rule() for rule in self.rules], self.name) > 0


def register(cls: type[Pass]) -> type[Pass]:
    """Class decorator: make a pass available by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Pass]]:
    """Every known pass by name (the modules of this package are imported first)."""
    _import_pass_modules()
    return dict(sorted(_REGISTRY.items()))


_walked = False


def _import_pass_modules() -> None:
    """Import every module of this package once: each registers its passes where they are
    defined, so that no list of them is kept by hand."""
    global _walked
    if _walked:
        return
    _walked = True
    here = os.path.dirname(__file__)
    for info in pkgutil.walk_packages([here], prefix=f"{__package__}."):
        importlib.import_module(info.name)


def make_pass(name: str, options: dict[str, str] | None = None) -> Pass:
    """An instance of the named pass with its options parsed from text."""
    passes = registered()
    cls = passes.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, list(passes), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else \
            "; `npuc opt --list-passes` lists them"
        raise NpucError(f"unknown pass '{name}'{hint}")
    fields = {f.name.replace("_", "-"): f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, text in (options or {}).items():
        f = fields.get(key)
        if f is None:
            known = ", ".join(fields) or "none"
            raise NpucError(f"pass '{name}' has no option '{key}' (its options: {known})")
        kwargs[f.name] = _convert(text, f, name)
    return cls(**kwargs)


def _convert(text: str, f: dataclasses.Field, pass_name: str):
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
    try:
        if kind.startswith("bool"):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            return float(text)
    except ValueError:
        raise NpucError(f"pass '{pass_name}': option '{f.name.replace('_', '-')}' wants "
                        f"{kind.split(' ')[0]}, got '{text}'") from None
    return text

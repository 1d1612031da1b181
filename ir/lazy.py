"""Packages whose public names are imported on first use, so that importing the package
(and ``npuc --help``) stays cheap."""

from __future__ import annotations

import sys
from importlib import import_module


def lazy_exports(package: str, names: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps each public name to the
    module that defines it, relative to the package (``"api"``) or absolute
    (``"npuc.ir.graph"``), with ``:attr`` when the name there differs
    (``"npuc.ir.verifier:verify"``); a submodule is a name too. A name is imported once,
    then kept in the package."""

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = module.partition(":")
        where = module if module.startswith("npuc.") else f"{package}.{module}"
        found = import_module(where)
        value = getattr(found, attr or name) if hasattr(found, attr or name) else \
            import_module(f"{where}.{attr or name}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__

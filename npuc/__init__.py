"""npuc: an NPU compiler and graph optimizer.

The public API, imported lazily so that ``import npuc`` (and ``npuc --help``) stay fast:

- ``npuc.import_onnx(path_or_model) -> Graph`` and ``npuc.export_onnx(graph, path=None)``
- ``npuc.load_model(spec)`` (``.onnx``, ``.npuir`` or ``zoo:NAME``) and ``npuc.save_model``
- ``npuc.parse_text(text)``, ``npuc.print_graph(graph)``, ``npuc.verify_ir(graph)``
- ``npuc.execute(graph, inputs) -> dict`` (the reference executor)
- ``npuc.zoo``: built-in models (``npuc.compiler.zoo``)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "import_onnx": ("npuc.compiler.frontend.onnx_import", "import_onnx"),
    "export_onnx": ("npuc.compiler.frontend.onnx_export", "export_onnx"),
    "load_model": ("npuc.compiler.frontend.load", "load_model"),
    "save_model": ("npuc.compiler.frontend.load", "save_model"),
    "parse_text": ("npuc.ir.parser", "parse_text"),
    "load_text": ("npuc.ir.parser", "load_text"),
    "save_text": ("npuc.ir.parser", "save_text"),
    "print_graph": ("npuc.ir.printer", "print_graph"),
    "verify_ir": ("npuc.ir.verifier", "verify"),
    "execute": ("npuc.compiler.executor.interpreter", "execute"),
    "Graph": ("npuc.ir.graph", "Graph"),
    "NpucError": ("npuc.ir.errors", "NpucError"),
    "optimize": ("npuc.compiler.passes", "optimize"),
    "quantize": ("npuc.compiler.quantize", "quantize"),
    "compile": ("npuc.compiler.driver", "compile"),
    "verify": ("npuc.compiler.verification", "verify"),
}

__all__ = sorted(_API) + ["zoo", "__version__"]


def __getattr__(name: str):
    if name == "zoo":
        return importlib.import_module("npuc.compiler.zoo")
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'npuc' has no attribute {name!r}")

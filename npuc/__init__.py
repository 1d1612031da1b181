"""npuc: an NPU compiler and graph optimizer.

The public API, imported lazily so that ``import npuc`` (and ``npuc --help``) stay fast:

- ``npuc.import_onnx(path_or_model) -> Graph`` and ``npuc.export_onnx(graph, path=None)``
- ``npuc.load_model(spec)`` (``.onnx``, ``.npuir`` or ``zoo:NAME``) and ``npuc.save_model``
- ``npuc.parse_text(text)``, ``npuc.print_graph(graph)``, ``npuc.verify_ir(graph)``
- ``npuc.execute(graph, inputs) -> dict`` (the reference executor)
- ``npuc.zoo``: built-in models (``npuc.compiler.zoo``)
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "import_onnx": "npuc.compiler.frontend.onnx_import",
    "export_onnx": "npuc.compiler.frontend.onnx_export",
    "load_model": "npuc.compiler.frontend.load",
    "save_model": "npuc.compiler.frontend.load",
    "parse_text": "npuc.ir.parser",
    "load_text": "npuc.ir.parser",
    "save_text": "npuc.ir.parser",
    "print_graph": "npuc.ir.printer",
    "verify_ir": "npuc.ir.verifier:verify",
    "execute": "npuc.compiler.executor.interpreter",
    "Graph": "npuc.ir.graph",
    "NpucError": "npuc.ir.errors",
    "optimize": "npuc.compiler.passes",
    "quantize": "npuc.compiler.quantize",
    "compile": "npuc.compiler.driver",
    "verify": "npuc.compiler.driver",
    "zoo": "npuc.compiler",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    # the helper is imported here, not above, so that ``import npuc`` imports nothing
    from npuc.ir.lazy import lazy_exports

    return lazy_exports(__name__, _API)[0](name)


def __dir__():
    return sorted(set(globals()) | set(_API))

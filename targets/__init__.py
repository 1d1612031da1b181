"""Targets: chips described as data, where each node runs, and what it costs.

- :func:`get_target` / :func:`list_targets`: the chips shipped in ``chips/*.toml``, those of
  plugins (entry point group ``npuc.targets``) and chip files given by path.
- :func:`load_target` / :func:`parse_target`: read a chip file, strictly.
- :func:`place`: which nodes of a graph run on the chip, and why the others do not.
- :func:`estimate_node` / :func:`estimate_group`: the analytical cost model.

The names are imported on first use, so ``import npuc.targets`` stays cheap.
"""

from __future__ import annotations

from npuc.ir.lazy import lazy_exports

_EXPORTS = {
    "get_target": "registry", "list_targets": "registry", "shipped_names": "registry",
    "load_target": "loader", "parse_target": "loader",
    "Target": "model", "ComputeUnit": "model", "Memory": "model", "QuantRules": "model",
    "OpRule": "model", "Limit": "model", "Fusion": "model", "Layout": "model",
    "Link": "model",
    "place": "placement", "place_node": "placement", "Placement": "placement",
    "estimate_node": "cost", "estimate_group": "cost", "Estimate": "cost", "Tile": "cost",
    "Roofline": "cost",
}

__all__ = [
    "ComputeUnit",
    "Estimate",
    "Fusion",
    "Layout",
    "Limit",
    "Memory",
    "OpRule",
    "Placement",
    "QuantRules",
    "Roofline",
    "Target",
    "Tile",
    "estimate_group",
    "estimate_node",
    "get_target",
    "list_targets",
    "load_target",
    "parse_target",
    "place",
    "place_node",
    "shipped_names",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

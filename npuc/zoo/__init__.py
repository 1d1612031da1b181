"""Standard models built directly as ONNX, shaped like ``torch.onnx.export`` output.

Each model is written node by node with ``onnx.helper`` in the form the TorchScript
exporter (opset 17) gives the torchvision or HuggingFace original, with seeded random
weights: the same name always gives a byte-identical model. The ``-tiny`` variants keep
the structure at a size that runs in milliseconds, for tests.

>>> from npuc import zoo
>>> model = zoo.build("resnet-tiny")
>>> feeds = zoo.sample_inputs(model, batch=2)
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import onnx

from npuc.ir.errors import NpucError
from npuc.zoo.builder import OPSET, GraphBuilder, parameter_count
from npuc.zoo.inputs import make_inputs, specs_of
from npuc.zoo.registry import ENTRIES, Entry

__all__ = ["build", "describe", "names", "parameter_count", "sample_inputs"]


def names() -> list[str]:
    """All model names, in catalogue order (full-size models first)."""
    return list(ENTRIES)


def build(name: str, batch: int | None = None, **options) -> onnx.ModelProto:
    """Build the model ``name`` as an ONNX ModelProto (opset 17 unless its options say).

    ``batch=None`` leaves the batch dimension symbolic (``"batch"``); an int fixes it.
    ``options`` override fields of the model's configuration, e.g.
    ``build("bert-base", layers=2, sequence=64)``.
    """
    entry = _entry(name)
    config = _configure(name, entry, options)
    # The seed depends on the name only, so a model is the same on every call.
    builder = GraphBuilder(seed=zlib.crc32(name.encode()), batch=batch)
    entry.family.build(builder, config)
    return builder.model(name.replace("-", "_"), doc=entry.summary,
                         opset=getattr(config, "opset", OPSET))


def describe(name: str) -> str:
    """One line about the model: what it is and its parameter count."""
    entry = _entry(name)
    return f"{name}: {entry.summary}, {_millions(entry.parameters)} parameters"


def sample_inputs(name_or_model: str | onnx.ModelProto, batch: int = 1,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Valid random inputs, by input name: images ~ N(0, 1), token ids within the
    vocabulary, attention masks of ones with the last few positions zero."""
    if isinstance(name_or_model, onnx.ModelProto):
        specs = specs_of(name_or_model)
    else:
        entry = _entry(name_or_model)
        specs = entry.family.input_specs(entry.config)
    return make_inputs(specs, batch=batch, seed=seed)


def _entry(name: str) -> Entry:
    if name not in ENTRIES:
        raise NpucError(f"unknown zoo model {name!r}; choose one of: {', '.join(ENTRIES)}")
    return ENTRIES[name]


def _configure(name: str, entry: Entry, options: dict) -> object:
    fields = {f.name for f in dataclasses.fields(entry.config)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise NpucError(f"zoo model {name!r} has no option {', '.join(unknown)}; "
                        f"its options are: {', '.join(sorted(fields))}")
    return dataclasses.replace(entry.config, **options)


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f}M" if count >= 1e5 else f"{count / 1e3:.1f}K"

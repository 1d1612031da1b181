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
import os
import zlib

import numpy as np
import onnx

from npuc.compiler.zoo import draws as draw_cache
from npuc.compiler.zoo.builder import OPSET, GraphBuilder, parameter_count
from npuc.compiler.zoo.inputs import make_inputs, specs_of
from npuc.compiler.zoo.registry import ENTRIES, Entry
from npuc.ir.errors import NpucError

__all__ = ["build", "describe", "has_external_weights", "model_path", "names",
           "parameter_count", "sample_inputs"]

# Where model_path writes models whose weights are external (NPUC_ZOO_CACHE overrides).
CACHE_ENV = "NPUC_ZOO_CACHE"


def names() -> list[str]:
    """All model names, in catalogue order (full-size models first)."""
    return list(ENTRIES)


def build(name: str, batch: int | None = None, arrays: dict | None = None,
          **options) -> onnx.ModelProto:
    """Build the model ``name`` as an ONNX ModelProto (opset 17 unless its options say).

    ``batch=None`` leaves the batch dimension symbolic (``"batch"``); an int fixes it.
    ``options`` override fields of the model's configuration, e.g.
    ``build("bert-base", layers=2, sequence=64)``. ``arrays``: a dict that receives the
    large parameters (name -> array) instead of the proto, whose initializers then hold
    no data (for ``import_onnx(..., arrays=)``, when the ONNX form is not kept).
    """
    entry = _entry(name)
    config = _configure(name, entry, options)
    # The seed depends on the name only, so a model is the same on every call.
    seed = zlib.crc32(name.encode())
    # a compile's build (the weights kept beside the proto) replays its draws from the
    # user's cache when it has them (see .draws): the same model, without drawing again
    draws = draw_cache.open_draws(name, options, seed) if arrays is not None else None
    try:
        return _build(name, entry, config, seed, batch, arrays, draws)
    except draw_cache.Mismatch:
        arrays.clear()
        draws = draw_cache.Draws(draws.path, draws.header)
        return _build(name, entry, config, seed, batch, arrays, draws)
    finally:
        if draws is not None:
            draws.abandon()


def _build(name, entry, config, seed, batch, arrays, draws) -> onnx.ModelProto:
    builder = GraphBuilder(seed=seed, batch=batch, arrays=arrays, draws=draws)
    entry.family.build(builder, config)
    if draws is not None:
        draws.finish()
    return builder.model(name.replace("-", "_"), doc=entry.summary,
                         opset=getattr(config, "opset", OPSET))


def has_external_weights(name: str, **options) -> bool:
    """True when the model keeps its weights as external zeros (too big for a message)."""
    entry = _entry(name)
    check = getattr(entry.family, "external_weights", None)
    return bool(check and check(_configure(name, entry, options)))


def model_path(name: str, folder: str | None = None, **options) -> str:
    """The model ``name`` written as ``model.onnx`` with its external weights beside it,
    as a sparse file that reads as zeros and takes no disk space; the path of the .onnx.

    The folder defaults to ``$NPUC_ZOO_CACHE/NAME`` (``~/.cache/npuc/zoo/NAME``), named
    after the options too; a model already there is reused (the same options give the
    same bytes)."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors

    from npuc.ir.safeio import write_file

    model = build(name, **options)
    if folder is None:
        root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "npuc", "zoo")
        tag = "-".join(f"{k}{v}" for k, v in sorted(options.items()))
        folder = os.path.join(root, name + (f"-{tag}" if tag else ""))
    path = os.path.join(folder, "model.onnx")
    data = model.SerializeToString()
    if os.path.isfile(path) and open(path, "rb").read() == data:
        return path
    os.makedirs(folder, exist_ok=True)
    ends: dict[str, int] = {}
    for t in _get_all_tensors(model):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            info = ExternalDataInfo(t)
            ends[info.location] = max(ends.get(info.location, 0),
                                      int(info.offset or 0) + int(info.length or 0))
    for location, size in sorted(ends.items()):
        # a hole: reads as zeros, uses no blocks (the safe writer writes data it is given;
        # a hole of 280 GB is no data, so it is made here, growing the file only)
        with open(os.path.join(folder, location), "ab") as f:
            if f.tell() < size:
                f.truncate(size)
    write_file(path, data)
    return path


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

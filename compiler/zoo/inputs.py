"""Random, valid inputs for the zoo's models (and for models shaped like them).

Images and token ids come from npuc's one random-input generator
(:func:`npuc.compiler.executor.inputs.random_array`), token ids over the whole
vocabulary; masks and positions have the layouts a tokenizer gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from npuc.compiler.executor.inputs import random_array
from npuc.ir.dtypes import dtype

# How many trailing positions of a generated attention mask are padding.
MASK_PADDING = 3


@dataclass(frozen=True)
class InputSpec:
    """One graph input: its name, what it holds, and its shape (``None`` = batch).

    ``kind`` is ``"image"`` (float32 ~ N(0, 1)), ``"tokens"`` (int64 ids below
    ``vocab``), ``"mask"`` (int64 ones, the last few positions zero) or ``"positions"``
    (int64 positions ``offset, offset + 1, ...`` along the last axis).
    """

    name: str
    kind: str
    shape: tuple[int | None, ...]
    vocab: int = 0
    offset: int = 0

    @property
    def elem_type(self) -> int:
        """The ONNX element type of this input."""
        return TensorProto.FLOAT if self.kind == "image" else TensorProto.INT64


def make_inputs(specs: list[InputSpec], batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays for ``specs`` with the batch dimension set to ``batch``."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in specs:
        shape = tuple(batch if d is None else d for d in spec.shape)
        if spec.kind == "image":
            arrays[spec.name] = random_array(rng, shape, dtype("f32"))
        elif spec.kind == "positions":
            arrays[spec.name] = np.broadcast_to(
                np.arange(spec.offset, spec.offset + shape[-1], dtype=np.int64), shape).copy()
        elif spec.kind == "tokens":
            arrays[spec.name] = random_array(rng, shape, dtype("i64"), spec.vocab)
        else:
            mask = np.ones(shape, dtype=np.int64)
            # Keep at least one real token per row, or softmax would see only padding.
            mask[..., max(1, shape[-1] - MASK_PADDING):] = 0
            arrays[spec.name] = mask
    return arrays


def specs_of(model: onnx.ModelProto) -> list[InputSpec]:
    """Read input specs back from a model's graph inputs.

    Float inputs are images; int64 inputs whose name mentions ``mask`` are masks; other
    int64 inputs are token ids, their vocabulary the row count of the embedding table
    they are gathered from. Any symbolic dimension is taken as the batch.
    """
    sizes = {t.name: list(t.dims) for t in model.graph.initializer}
    vocab_of = {}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[0] in sizes:
            vocab_of.setdefault(node.input[1], sizes[node.input[0]][0])
    specs = []
    for value in model.graph.input:
        if value.name in sizes:  # initializers listed as inputs by old exporters
            continue
        tensor = value.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else None
                      for d in tensor.shape.dim)
        if tensor.elem_type != TensorProto.INT64:
            specs.append(InputSpec(value.name, "image", shape))
        elif "mask" in value.name:
            specs.append(InputSpec(value.name, "mask", shape))
        elif "position" in value.name:
            specs.append(InputSpec(value.name, "positions", shape))
        else:
            specs.append(InputSpec(value.name, "tokens", shape, vocab_of.get(value.name, 2)))
    return specs

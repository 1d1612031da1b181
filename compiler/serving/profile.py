"""What a decoder is made of, read from its ONNX graph without reading its weights.

A model is a decoder when it has a KV cache: graph outputs named ``present...`` of rank 4,
``[batch, kv_heads, positions, head_dim]`` (the names HuggingFace and optimum exports
use). From the initializers' dimensions alone (external data is never read) and onnx's
shape inference:

- ``matmul_parameters``: weights multiplied by every token (the second input of a
  ``MatMul`` or ``Gemm``, directly or through a ``Transpose``, as a tied LM head is);
- ``embedding_parameters``: tables read a row per token by ``Gather``;
- ``attention_macs_per_pair``: MACs of the products of two activations (``Q K^T`` and
  ``P V``) per query token and context position, all layers together;
- ``layers``, ``kv_heads``, ``head_dim`` from the ``present`` outputs; ``hidden``, the
  residual width, from the embedding table.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from npuc.ir.errors import ModelError, NpucError


@dataclass(frozen=True)
class DecoderProfile:
    """The sizes that price a decoder's serving (see the module docstring)."""

    name: str
    parameters: int
    matmul_parameters: int
    embedding_parameters: int
    layers: int
    kv_heads: int
    head_dim: int
    hidden: int
    attention_macs_per_pair: float

    @property
    def kv_elements_per_token(self) -> int:
        """Key and value elements one position adds to the cache, all layers."""
        return 2 * self.layers * self.kv_heads * self.head_dim

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {
            "kv_elements_per_token": self.kv_elements_per_token}


def load_proto(model):
    """The model's ONNX proto without its external data: a ModelProto, ``zoo:NAME`` or an
    ``.onnx`` path; None for other models (text IR)."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    spec = os.fspath(model)
    if spec.startswith("zoo:"):
        from npuc.compiler import zoo

        return zoo.build(spec[4:])
    if spec.endswith(".onnx"):
        from npuc.ir.safeio import check_input_file

        check_input_file(spec)
        try:
            return onnx.load(spec, load_external_data=False)
        except Exception as e:  # DecodeError and friends
            raise ModelError(f"{spec}: not a readable ONNX model ({type(e).__name__})") \
                from None
    return None


def _kv_outputs(proto) -> list:
    outs = []
    for vi in proto.graph.output:
        dims = vi.type.tensor_type.shape.dim
        if vi.name.startswith("present") and len(dims) == 4:
            outs.append(vi)
    return outs


def is_decoder(proto) -> bool:
    """True when the graph has a KV cache (``present...`` outputs of rank 4)."""
    return proto is not None and bool(_kv_outputs(proto))


def _static(proto):
    """A copy with every symbolic input dimension set to 1, shapes inferred."""
    import onnx

    light = onnx.ModelProto()
    light.CopyFrom(proto)
    del light.graph.initializer[:]  # shapes come from the dims kept below
    dims = {t.name: list(t.dims) for t in proto.graph.initializer}
    for vi in light.graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.Clear()
                d.dim_value = 1
    for name, shape in dims.items():  # initializers become typed inputs
        light.graph.input.append(onnx.helper.make_tensor_value_info(
            name, _elem_type(proto, name), shape))
    return onnx.shape_inference.infer_shapes(light), dims


def _elem_type(proto, name):
    for t in proto.graph.initializer:
        if t.name == name:
            return t.data_type
    raise AssertionError(name)


def decoder_profile(proto, name: str = "model") -> DecoderProfile:
    """The :class:`DecoderProfile` of a decoder's proto (never reads weight data)."""
    kv = _kv_outputs(proto)
    if not kv:
        raise NpucError(f"{name}: not a decoder: no KV cache outputs named present*")
    shape = [d.dim_value for d in kv[0].type.tensor_type.shape.dim]
    kv_heads, head_dim = shape[1], shape[3]
    if not kv_heads or not head_dim:
        raise NpucError(f"{name}: the KV cache output {kv[0].name} has no static head "
                        "count and head size")
    inferred, dims = _static(proto)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(inferred.graph.value_info) + list(inferred.graph.input) +
              list(inferred.graph.output)}
    transposed = {n.output[0]: n.input[0] for n in proto.graph.node
                  if n.op_type == "Transpose" and n.input[0] in dims}
    matmul = embedding = hidden = 0
    attention = 0.0
    for node in proto.graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            weight = transposed.get(node.input[1], node.input[1])
            if weight in dims:
                matmul += math.prod(dims[weight])
            elif node.op_type == "MatMul":
                attention += _macs(shapes, node)
        elif node.op_type == "Gather" and node.input[0] in dims:
            embedding += math.prod(dims[node.input[0]])
            hidden = hidden or dims[node.input[0]][-1]
    total = sum(math.prod(d) for d in dims.values())
    pairs = _pairs(inferred, kv[0].name, shapes)
    return DecoderProfile(name, total, matmul, embedding, len(kv) // 2, kv_heads, head_dim,
                          hidden or kv_heads * head_dim, attention / pairs)


def _macs(shapes, node) -> float:
    a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
    if not a or not out or not all(out) or not a[-1]:
        return 0.0
    return float(math.prod(out) * a[-1])


def _pairs(inferred, kv_name: str, shapes) -> float:
    """(query tokens x context positions) x batch of the inferred graph."""
    ids = next(vi for vi in inferred.graph.input)
    tokens = math.prod(d.dim_value for d in ids.type.tensor_type.shape.dim)
    positions = shapes[kv_name][2]
    return float(tokens * positions)

"""JSON spellings of what a program carries: attributes, tensor types, quantization.

Arrays become ``{"array": [...], "dtype": "float32", "shape": [...]}`` so that a program
file is plain JSON and reads back to the same values. Floats are written by Python's
``repr`` (shortest round-trip form), so the same program always gives the same bytes.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.analysis import captured_values
from npuc.ir.dtypes import dtype as ir_dtype
from npuc.ir.errors import UnsupportedError
from npuc.ir.graph import Graph
from npuc.ir.types import QuantParams, TensorType


def encode_value(value, where: str = "attribute"):
    """A JSON-ready form of an attribute value (lists, scalars, strings, arrays)."""
    if isinstance(value, np.ndarray):
        return {"array": value.ravel().tolist(), "dtype": str(value.dtype),
                "shape": list(value.shape)}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [encode_value(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Graph):
        return encode_graph(value)
    raise UnsupportedError(f"{where}: a {type(value).__name__} attribute cannot be lowered "
                           "into a program")


def encode_graph(graph: Graph) -> dict:
    """A subgraph (an If branch, a Loop body) as a standalone ONNX graph whose last
    inputs, after its own, are the values it reads from the graph around it ("captures",
    by name): the host runs it given those. Base64 of the serialized GraphProto, with the opsets."""
    import base64

    from onnx import helper

    from npuc.ir.onnx_io import graph_to_proto
    from npuc.ir.onnx_types import type_to_proto

    proto = graph_to_proto(graph)
    captured = captured_values(graph)
    own = list(proto.input)
    del proto.input[:]
    proto.input.extend(own + [helper.make_value_info(v.name, type_to_proto(v.type))
                              for v in captured])
    data = proto.SerializeToString(deterministic=True)
    return {"graph": base64.b64encode(data).decode("ascii"),
            "captures": [v.name for v in captured],
            "opset": dict(sorted(graph._root().opset.items()))}


def decode_graph(value: dict) -> Graph:
    """The standalone graph of :func:`encode_graph`."""
    import base64

    import onnx

    from npuc.ir.onnx_io import graph_from_proto

    proto = onnx.GraphProto()
    proto.ParseFromString(base64.b64decode(value["graph"]))
    graph = graph_from_proto(proto, value["opset"])
    graph.meta["captures"] = list(value["captures"])
    return graph


def decode_value(value):
    """The inverse of :func:`encode_value`."""
    if isinstance(value, dict) and "graph" in value:
        return decode_graph(value)
    if isinstance(value, dict) and "array" in value:
        return np.asarray(value["array"], dtype=value["dtype"]).reshape(value["shape"])
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    return value


def encode_type(t: TensorType) -> dict:
    out = {"dtype": t.dtype.name, "shape": list(t.shape)}
    if t.quant is not None:
        q = t.quant
        out["quant"] = {"scale": encode_value(q.scale), "zero_point": encode_value(q.zero_point),
                        "axis": q.axis}
    return out


def type_bytes(d: dict) -> int:
    """The bytes of a tensor of the encoded type ``d`` (a program's ``tensors`` entry)."""
    return int(np.prod(d["shape"], dtype=np.int64)) * ir_dtype(d["dtype"]).bits // 8


def decode_type(d: dict) -> TensorType:
    quant = None
    if d.get("quant"):
        q = d["quant"]
        quant = QuantParams(decode_value(q["scale"]), decode_value(q["zero_point"]), q["axis"])
    return TensorType(d["dtype"], tuple(d["shape"]), quant)

"""Hypothesis strategies for random IR graphs, shared by the property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from npuc.ir.graph import Graph
from npuc.ir.infer import infer_node
from npuc.ir.types import tensor

UNARY = ["Relu", "Sigmoid", "Tanh", "Neg", "Abs", "Exp", "Identity", "Softsign"]
BINARY = ["Add", "Sub", "Mul", "Max", "Min"]
NAME_CHARS = st.sampled_from(list("abcxyz_019.:/-") + [" ", "%", '"', "é"])
DTYPES = ["f32", "f64", "f16", "bf16", "i64", "i32", "i8", "u8", "bool", "f8e4m3"]


@st.composite
def names(draw):
    """Value names, sometimes with characters that need quoting."""
    return draw(st.text(NAME_CHARS, min_size=1, max_size=8))


@st.composite
def graphs(draw, onnx_compatible: bool = False, max_nodes: int = 12):
    """A random valid graph of elementwise operators over one shape.

    With ``onnx_compatible`` the graph uses only float32 and ONNX operators with their
    attributes, so that it can be exported and run by onnxruntime.
    """
    rank = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.sampled_from([1, 2, 3, "N"]), min_size=rank,
                                max_size=rank)))
    g = Graph(draw(st.sampled_from(["main", "g", "torch_jit", "my graph"])))
    g.opset = {"": 17}
    used: set[str] = set()

    def fresh(prefix):
        name = draw(names()) if not onnx_compatible else f"{prefix}{len(used)}"
        if name in used:
            name = f"{name}{len(used)}"
        used.add(name)
        return name

    pool = []
    for _ in range(draw(st.integers(1, 3))):
        pool.append(g.add_input(fresh("in"), tensor("f32", shape)))
    static = tuple(1 if isinstance(d, str) else d for d in shape)
    for _ in range(draw(st.integers(0, 2))):
        big = draw(st.booleans())
        cshape = static if not big else (32,) + static[1:] if static else (20,)
        if big and static and static[0] not in (1, 32):
            cshape = static
        data = draw(st.lists(st.floats(-4, 4, width=32), min_size=1, max_size=1))[0]
        arr = (np.arange(int(np.prod(cshape)), dtype=np.float32).reshape(cshape) * 0.25
               - data).astype(np.float32)
        if cshape == static or not big:
            pool.append(g.add_constant(fresh("c"), arr))
    for _ in range(draw(st.integers(1, max_nodes))):
        if draw(st.booleans()):
            op = draw(st.sampled_from(UNARY))
            ins = [draw(st.sampled_from(pool))]
        else:
            op = draw(st.sampled_from(BINARY))
            ins = [draw(st.sampled_from(pool)), draw(st.sampled_from(pool))]
        attrs = {}
        if op == "Relu" and not onnx_compatible and draw(st.booleans()):
            attrs = {"note": draw(st.text(max_size=5)),
                     "alpha": draw(st.floats(allow_nan=True, allow_infinity=True, width=32)),
                     "dims": draw(st.lists(st.integers(-2**40, 2**40), max_size=3))}
        node_name = draw(st.sampled_from(["", f"/{op}_{len(used)}", f"node {len(used)}"]))
        node = g.create_node(op, ins, [(fresh("t"), None)], attrs, name=node_name)
        node.outputs[0].type = infer_node(node)[0]
        pool.append(node.outputs[0])
    produced = [v for v in pool if v.producer is not None]
    k = draw(st.integers(1, min(3, len(produced))))
    g.outputs = list(dict.fromkeys(produced[-k:]))
    return g


@st.composite
def any_dtype_constants(draw):
    """A graph whose constants cover the element types and the printing edge cases."""
    g = Graph("consts")
    g.opset = {"": 17}
    x = g.add_input("x", tensor("f32", [2]))
    outs = []
    for i in range(draw(st.integers(1, 4))):
        dt = draw(st.sampled_from(DTYPES))
        n = draw(st.sampled_from([0, 1, 3, 17, 40]))
        raw = draw(st.binary(min_size=n * 8, max_size=n * 8))
        np_dt = tensor(dt).dtype.numpy
        arr = np.frombuffer(raw, dtype=np.uint8)[: n * np_dt.itemsize].view(np_dt).copy() \
            if n else np.zeros((0,), np_dt)
        if dt in ("f32", "f64", "f16", "bf16", "f8e4m3"):
            arr = np.where(np.isnan(arr.astype(np.float64)), np.asarray(0, np_dt), arr) \
                .astype(np_dt)
        if dt == "bool":
            arr = arr.view(np.uint8) != 0
        c = g.add_constant(f"c{i}", arr)
        outs.append(g.create_node("Identity", [c], [(f"o{i}", c.type)]).outputs[0])
    g.outputs = outs + [x]
    return g

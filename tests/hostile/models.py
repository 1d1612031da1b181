"""Small hostile files for the hostile-input suite: models, arrays and chip files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

CHIPS = Path(__file__).resolve().parents[2] / "targets" / "chips"


def vi(name, shape, t=T.FLOAT):
    return h.make_tensor_value_info(name, t, shape)


def save(path: Path, nodes, inputs, outputs, inits=(), opset=17) -> str:
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    path.write_bytes(h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
                     .SerializeToString())
    return str(path)


def const(name, value, dtype=np.int64):
    return nh.from_array(np.asarray(value, dtype), name)


def tiny(path: Path, width: int = 4, out: str = "y") -> str:
    """x -> Relu -> Add(w): a model that compiles in a moment."""
    w = np.linspace(-1, 1, width, dtype=np.float32)
    return save(path, [h.make_node("Relu", ["x"], ["r"]), h.make_node("Add", ["r", "w"], [out])],
                [vi("x", ["batch", width])], [vi(out, ["batch", width])], [nh.from_array(w, "w")])


def sized_by_data(path: Path, op: str) -> str:
    """ConstantOfShape of [2**32], Range to 2**40 or Tile by [2**30, 2**30]."""
    if op == "ConstantOfShape":
        nodes = [h.make_node("ConstantOfShape", ["s"], ["c"]), h.make_node("Add", ["c", "x"], ["y"])]
        return save(path, nodes, [vi("x", [1])], [vi("y", ["n"])], [const("s", [2**32])])
    if op == "Range":
        nodes = [h.make_node("Range", ["a", "b", "d"], ["r"]),
                 h.make_node("Cast", ["r"], ["rf"], to=T.FLOAT), h.make_node("Add", ["rf", "x"], ["y"])]
        return save(path, nodes, [vi("x", [1])], [vi("y", ["n"])],
                    [const("a", 0), const("b", 2**40), const("d", 1)])
    nodes = [h.make_node("Tile", ["x", "r"], ["y"])]
    return save(path, nodes, [vi("x", [1, 1])], [vi("y", ["n", "m"])],
                [const("r", [2**30, 2**30])])


def big_fold(path: Path, n: int = 4096) -> str:
    """Two constants [n, n] multiplied: n**3 multiply-adds at compile time."""
    one = nh.from_array(np.array([1], np.float32))
    nodes = [h.make_node("ConstantOfShape", ["s"], ["a"], value=one),
             h.make_node("ConstantOfShape", ["s"], ["b"], value=one),
             h.make_node("MatMul", ["a", "b"], ["c"]), h.make_node("Add", ["c", "x"], ["y"])]
    return save(path, nodes, [vi("x", [1])], [vi("y", [n, n])], [const("s", [n, n])])


def endless_loop(path: Path) -> str:
    """A Loop whose trip count is 2**62 and whose condition stays true."""
    body = h.make_graph(
        [h.make_node("Identity", ["cin"], ["cout"]), h.make_node("Add", ["v", "one"], ["vout"])],
        "body", [vi("i", [], T.INT64), vi("cin", [], T.BOOL), vi("v", [1])],
        [vi("cout", [], T.BOOL), vi("vout", [1])],
        [nh.from_array(np.array([1], np.float32), "one")])
    return save(path, [h.make_node("Loop", ["M", "c", "x"], ["y"], body=body)],
                [vi("x", [1])], [vi("y", [1])], [const("M", 2**62), const("c", True, bool)])


def npz_declaring(path: Path, name: str, shape) -> str:
    """An .npz whose member declares ``shape`` but holds (almost) no data: a reader that
    inflates before checking would allocate the declared size."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(f"{name}.npy", "w") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)})
            f.write(bytes(1024))
    return str(path)


def pickled_npz(path: Path, name: str) -> str:
    np.savez(path, **{name: np.array([{"a": 1}], dtype=object)})
    return str(path)


def chip(path: Path, base: str = "warboy", **replace) -> str:
    """A copy of a shipped chip file with ``key = value`` lines replaced (raw TOML text)."""
    lines = (CHIPS / f"{base}.toml").read_text().splitlines()
    for key, value in replace.items():
        for i, line in enumerate(lines):
            if line.split("=")[0].strip() == key:
                lines[i] = f"{key} = {value}"
                break
        else:
            raise KeyError(key)
    path.write_text("\n".join(lines) + "\n")
    return str(path)

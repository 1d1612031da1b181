"""The same command on the same inputs gives byte-identical artifacts, whatever the BLAS
thread count and the CPUs the process may run on.

The model is large enough for OpenBLAS to split its products across threads: before
npuc defined its dot products as float64 accumulations (``kernels/accumulate.py``), the
calibration scales of this model, and so program.json and weights.bin, changed with
``NPUC_BLAS_THREADS``.
"""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import npuc


def _conv_stack(path):
    rng = np.random.default_rng(0)
    nodes, inits, x, c = [], [], "x", 32
    for i, co in enumerate([64, 64, 128]):
        w = (rng.standard_normal((co, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes += [helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x, c = f"r{i}", co
    inits += [numpy_helper.from_array((rng.standard_normal((128, 256)) / 11).astype(np.float32),
                                      "wm"),
              numpy_helper.from_array(np.array([1, 128, -1], np.int64), "shape")]
    nodes += [helper.make_node("Reshape", [x, "shape"], ["flat"]),
              helper.make_node("Transpose", ["flat"], ["t"], perm=[0, 2, 1]),
              helper.make_node("MatMul", ["t", "wm"], ["y"])]
    graph = helper.make_graph(
        nodes, "stack", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 48, 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2304, 256])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def _files(monkeypatch, model, chip, precision, blas, one_cpu=False):
    monkeypatch.setenv("NPUC_BLAS_THREADS", str(blas))
    cpus = os.sched_getaffinity(0)
    if one_cpu:  # as `taskset -c 0` would
        os.sched_setaffinity(0, {min(cpus)})
    try:
        return npuc.compile(model, chip, quantize=precision, calibration="random:4").files
    finally:
        os.sched_setaffinity(0, cpus)


@pytest.mark.parametrize("case", [("stack", "warboy-2pe", "int8"), ("zoo:bert-tiny", "rngd", "fp8")])
def test_artifacts_do_not_depend_on_threads_or_cpus(tmp_path, monkeypatch, case):
    model, chip, precision = case
    if model == "stack":
        model = _conv_stack(tmp_path / "stack.onnx")
    one = _files(monkeypatch, model, chip, precision, 1)
    two = _files(monkeypatch, model, chip, precision, 2)
    pinned = _files(monkeypatch, model, chip, precision, 2, one_cpu=True)
    assert {"program.json", "weights.bin", "summary.json"} <= set(one)
    for name in one:
        assert one[name] == two[name], f"{name} differs between 1 and 2 BLAS threads"
        assert one[name] == pinned[name], f"{name} differs when pinned to one CPU"

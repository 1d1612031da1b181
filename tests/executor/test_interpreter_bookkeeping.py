"""What the interpreter keeps between nodes and runs: the size limit on declared outputs
(checked once per type, again when the limit changes) and the peak of live bytes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from npuc.compiler.executor.interpreter import RunStats, execute
from npuc.compiler.frontend.load import load_model
from npuc.ir.errors import NpucError
from npuc.ir.limits import reset_limits, set_limits

F = onnx.TensorProto.FLOAT


def _tile_graph():
    """x (4, 8) -> Tile x (64, 64) -> Relu -> ReduceSum: a 512 KiB intermediate."""
    reps = helper.make_tensor("reps", onnx.TensorProto.INT64, [2], [64, 64])
    nodes = [helper.make_node("Tile", ["x", "reps"], ["t"]),
             helper.make_node("Relu", ["t"], ["r"]),
             helper.make_node("ReduceSum", ["r"], ["y"], keepdims=0)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [4, 8])],
                          [helper.make_tensor_value_info("y", F, [])], initializer=[reps])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return load_model(onnx.shape_inference.infer_shapes(model))


def test_a_lower_limit_is_applied_to_a_graph_already_run():
    graph = _tile_graph()
    x = np.ones((4, 8), np.float32)
    assert execute(graph, {"x": x})["y"] == 4 * 8 * 64 * 64
    try:
        set_limits(tensor_bytes=100_000)
        with pytest.raises(NpucError, match="Tile node .* above the limit"):
            execute(graph, {"x": x})
    finally:
        reset_limits()
    assert execute(graph, {"x": x})["y"] == 4 * 8 * 64 * 64


def test_peak_bytes_counts_the_live_buffers_once():
    graph = _tile_graph()
    stats = RunStats()
    execute(graph, {"x": np.ones((4, 8), np.float32)}, stats=stats)
    tile = 4 * 8 * 64 * 64 * 4
    # the input and Tile's output, then Relu's output beside it (or written into it)
    assert tile + 128 <= stats.peak_bytes <= 2 * tile + 128 + 64

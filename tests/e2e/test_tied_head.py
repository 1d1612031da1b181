"""A tied LM head as the dynamo exporter writes it, ``MatMul(x, Transpose(table))`` with
the embedding ``Gather`` reading the same table, runs on the NPU at every 16-bit float
precision: the ``Transpose`` of the table is folded, the product's weight is constant, and
no float32 copy of the table is left for the host."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from npuc.compiler.driver import compile

VOCAB, HIDDEN = 1100, 1024  # the table is past fold-constants' default max-elements (1 << 20)


def _tied(folder) -> str:
    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((VOCAB, HIDDEN), np.float32),
                                    "model.lm_head.weight")
    norm = numpy_helper.from_array(rng.standard_normal(HIDDEN).astype(np.float32), "norm")
    nodes = [
        helper.make_node("Gather", ["model.lm_head.weight", "input_ids"], ["embedding"],
                         name="node_embedding"),
        helper.make_node("Mul", ["embedding", "norm"], ["hidden"], name="node_mul"),
        helper.make_node("Transpose", ["model.lm_head.weight"], ["head"],
                         name="node_Transpose", perm=[1, 0]),
        helper.make_node("MatMul", ["hidden", "head"], ["logits"], name="node_lm_head"),
    ]
    graph = helper.make_graph(
        nodes, "tied", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, VOCAB])],
        [table, norm])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = str(folder / "tied.onnx")
    onnx.save(model, path, save_as_external_data=True, location="tied.onnx.data",
              size_threshold=1024)
    return path


@pytest.mark.parametrize("target,precision", [("rngd", "bf16"), ("atom", "fp16")])
@pytest.mark.parametrize("keep_reference", [True, False])
def test_the_tied_head_is_folded_and_runs_on_the_npu(tmp_path, target, precision,
                                                     keep_reference):
    r = compile(_tied(tmp_path), target, quantize=precision, keep_reference=keep_reference)
    cpu = [op for layer in r.summary["layers"] if layer["device"] == "cpu"
           for op in layer["ops"]]
    assert cpu == []
    transposes = [] if r.graph is None else \
        [n for n in r.graph.nodes if n.op_type == "Transpose"]
    assert transposes == []
    # the table at 2 bytes per element for the Gather and again, transposed, for the
    # product; a float32 copy (4 bytes per element) would not fit in this
    assert len(r.weights) < 2 * 2 * VOCAB * HIDDEN + 64 * 1024

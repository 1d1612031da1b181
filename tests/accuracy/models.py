"""Small ONNX models for the accuracy tests."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def mlp(inputs=16, hidden=32, classes=5, seed=0, name="mlp"):
    """x [n, inputs] -> Gemm -> Relu -> Gemm -> logits [n, classes], seeded weights."""
    rng = np.random.default_rng(seed)
    inits = {"w1": rng.normal(0, 0.5, (hidden, inputs)).astype(np.float32),
             "b1": rng.normal(0, 0.1, hidden).astype(np.float32),
             "w2": rng.normal(0, 0.5, (classes, hidden)).astype(np.float32),
             "b2": np.zeros(classes, np.float32)}
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"], transB=1, name="fc2")]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", inputs])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", classes])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def image_model(h=6, w=5, channels=3):
    """x [1, C, H, W] -> GlobalAveragePool... as a Conv 1x1 then Flatten (an image input)."""
    rng = np.random.default_rng(1)
    inits = {"w": rng.normal(0, 0.5, (4, channels, h, w)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Flatten", ["c"], ["y"], name="flat")]
    graph = helper.make_graph(
        nodes, "img", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                     [1, channels, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def token_model(length=6, vocab=20):
    """ids [1, L] int64, attention_mask [1, L] -> Gather embeddings -> scores [1, L, 3]."""
    rng = np.random.default_rng(2)
    inits = {"emb": rng.normal(size=(vocab, 3)).astype(np.float32)}
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["e"], name="embed"),
             helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT,
                              name="cast"),
             helper.make_node("Unsqueeze", ["m", "axes"], ["m3"], name="unsq"),
             helper.make_node("Mul", ["e", "m3"], ["scores"], name="mask")]
    inits["axes"] = np.array([2], np.int64)
    graph = helper.make_graph(
        nodes, "tok", [helper.make_tensor_value_info("input_ids", TensorProto.INT64,
                                                     [1, length]),
                       helper.make_tensor_value_info("attention_mask", TensorProto.INT64,
                                                     [1, length])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, length, 3])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

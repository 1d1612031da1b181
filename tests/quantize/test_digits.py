"""Accuracy: an MLP fit by scikit-learn on the digits set keeps its accuracy at int8."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.quantize import quantize

sklearn = pytest.importorskip("sklearn")


def _digits_model():
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1300], order[1300:]
    clf = MLPClassifier((64, 32), max_iter=300, random_state=0).fit(x[train], y[train])
    nodes, inits, prev = [], [], "x"
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        inits += [numpy_helper.from_array(w.T.astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [f"h{i}"], transB=1,
                                      name=f"fc{i}"))
        prev = f"h{i}"
        if i < len(clf.coefs_) - 1:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"], name=f"relu{i}"))
            prev = f"r{i}"
    graph = helper.make_graph(
        nodes, "digits", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["n", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return npuc.import_onnx(model), x[train], x[test], y[test], prev


def test_int8_accuracy_within_half_a_point():
    g, xtr, xte, yte, out = _digits_model()
    cal = [{"x": xtr[i:i + 100]} for i in range(0, 400, 100)]
    q = quantize(g, "warboy-2pe", cal, progress=False)
    assert sum(n.op_type == "QMatMul" for n in q.nodes) == 3
    acc_f = np.mean(execute(g, {"x": xte})[out].argmax(1) == yte)
    acc_q = np.mean(execute(q, {"x": xte})[out].argmax(1) == yte)
    assert acc_f > 0.9
    assert acc_q >= acc_f - 0.005

"""onnxruntime's contrib operators: npuc's kernels against onnxruntime, one small model
each, with the output types npuc infers at import checked against what onnxruntime gives."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from npuc.compiler.executor.interpreter import execute
from npuc.compiler.frontend.onnx_import import import_onnx
from npuc.ir.errors import NpucError

from .contrib_cases import CASES, LSTM_CASE, REFERENCE, build

ort = pytest.importorskip("onnxruntime")

# dynamic quantization of the hidden state at every step (onnxruntime) against float steps
LOOSE = {LSTM_CASE[0]: 2e-2}


def ort_run(model, feeds):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_contrib_op_matches_onnxruntime(case):
    name, op, inputs, attrs, outputs, constants = case
    model, feeds = build(op, inputs, attrs, outputs, constants)
    if op in REFERENCE:
        want = REFERENCE[op](inputs)
    else:
        want = ort_run(model, feeds)
    model, _ = build(op, inputs, attrs, outputs, constants, [(w.dtype, w.ndim) for w in want])
    graph = import_onnx(model)
    got = execute(graph, feeds)
    for i, (v, w) in enumerate(zip(graph.outputs, want)):
        g = np.asarray(got[v.name])
        assert g.shape == w.shape, f"{name} output {i}"
        assert g.dtype == w.dtype, f"{name} output {i}"
        t = v.type
        if t is not None and t.shape is not None and all(isinstance(d, int) for d in t.shape):
            assert tuple(t.shape) == w.shape, f"{name} output {i}: inferred {t}"
        if w.dtype.kind in "iu":
            np.testing.assert_array_equal(g, w, err_msg=f"{name} output {i}")
        else:
            tol = LOOSE.get(name, 2e-5)
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=f"{name} output {i}")


def _one_node(node):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])
    return helper.make_model(helper.make_graph([node], "bad", [x], [y]), opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])


@pytest.mark.parametrize("node, message", [
    (helper.make_node("Attention", ["x", "x"], ["y"], domain="com.microsoft"),
     "node 'y' (Attention) lacks its required attribute 'num_heads'"),
    (helper.make_node("Attention", ["x"], ["y"], domain="com.microsoft", num_heads=2),
     "node 'y' (Attention) has 1 inputs; it takes 2 to 7"),
    (helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.microsoft"),
     "unknown operator 'NoSuchOp' in domain 'com.microsoft'"),
])
def test_malformed_contrib_node_is_refused_with_its_name(node, message):
    with pytest.raises(NpucError, match=re.escape(message)):
        import_onnx(_one_node(node))


def test_onnxruntime_ops_in_the_onnx_domain_read_as_contrib():
    node = helper.make_node("SimplifiedLayerNormalization", ["x", "g"], ["y"], epsilon=1e-6)
    model = _one_node(node)
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(8, np.float32), "g"))
    graph = import_onnx(model)
    assert [n.qualified_type for n in graph.nodes] == \
        ["com.microsoft::SimplifiedLayerNormalization"]
    assert all(n.domain == "" for n in model.graph.node)  # the caller's model is not changed

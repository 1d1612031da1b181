"""onnxruntime's contrib operators: npuc's kernels against onnxruntime, one small model
each, with the output types npuc infers at import checked against what onnxruntime gives."""

from __future__ import annotations

import numpy as np
import pytest

from npuc.compiler.executor.interpreter import execute
from npuc.compiler.frontend.onnx_import import import_onnx

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

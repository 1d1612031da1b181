"""LSTM, GRU and RNN unroll into MatMul and elementwise steps that compute what they did."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from npuc.compiler.driver import verify
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.schedule.prepare import load_static

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def recurrent_model(op, direction="forward", steps=3, batch=2, width=5, hidden=4,
                    initial=True, **attrs):
    rng = np.random.default_rng(7)
    dirs = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    inits = [numpy_helper.from_array(
        (rng.standard_normal(s) * 0.5).astype(np.float32), n) for n, s in
        (("W", (dirs, g * hidden, width)), ("R", (dirs, g * hidden, hidden)),
         ("B", (dirs, 2 * g * hidden)))]
    ins = ["x", "W", "R", "B", ""] + (["h0"] if initial else [])
    outs = ["y", "yh"] + (["yc"] if op == "LSTM" else [])
    if op == "LSTM" and initial:
        ins.append("c0")
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", batch, width])]
    if initial:
        inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT,
                                                    [dirs, batch, hidden]))
        if op == "LSTM":
            inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT,
                                                        [dirs, batch, hidden]))
    node = helper.make_node(op, ins, outs, hidden_size=hidden, direction=direction, **attrs)
    after = helper.make_node("Relu", ["y"], ["yr"])  # a reader after the recurrence
    graph = helper.make_graph(
        [node, after], "m", inputs,
        [helper.make_tensor_value_info("yr", TensorProto.FLOAT, ["T", dirs, batch, hidden])] +
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [dirs, batch, hidden])
         for n in outs[1:]],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def _feeds(model, steps=3):
    rng = np.random.default_rng(3)
    return {i.name: rng.standard_normal(
        [steps if d.dim_param else d.dim_value for d in i.type.tensor_type.shape.dim]
    ).astype(np.float32) for i in model.graph.input}


CASES = [("LSTM", "forward", {}), ("LSTM", "bidirectional", {}), ("LSTM", "reverse", {}),
         ("GRU", "forward", {}), ("GRU", "forward", {"linear_before_reset": 1}),
         ("GRU", "bidirectional", {}), ("RNN", "forward", {}), ("RNN", "reverse", {})]


@pytest.mark.parametrize("op,direction,attrs", CASES)
def test_unrolled_matches_onnxruntime(op, direction, attrs):
    model = recurrent_model(op, direction, **attrs)
    feeds = _feeds(model)
    graph, _ = load_static(model, given={k: v.shape for k, v in feeds.items()})
    assert not any(n.op_type == op for n in graph.nodes)
    got = execute(graph, feeds)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    names = [o.name for o in model.graph.output]
    for name, w in zip(names, want):
        np.testing.assert_allclose(got[name], w, rtol=1e-5, atol=1e-5, err_msg=name)


def test_lstm_without_initial_state_compiles_on_the_npu():
    model = recurrent_model("LSTM", initial=False)
    feeds = _feeds(model)
    r = verify(model, "rngd", inputs=feeds)
    assert r.passed, r.outputs
    ops = {n.op_type for g in r.compiled.schedule.groups if g.device == "npu"
           for n in r.compiled.graph.nodes if n.name in g.nodes}
    assert {"Sigmoid", "Tanh"} <= ops and any("MatMul" in op for op in ops), ops
    assert not any(g.device == "cpu" for g in r.compiled.schedule.groups)


def test_what_is_not_unrolled_stays_whole_with_the_reason():
    from npuc.ir.decisions import log_of

    model = recurrent_model("LSTM", steps=3, **{"clip": 1.0})
    feeds = _feeds(model)
    graph, _ = load_static(model, given={k: v.shape for k, v in feeds.items()})
    assert any(n.op_type == "LSTM" for n in graph.nodes)
    assert any("clipping" in d.reason for d in log_of(graph).by_stage("prepare"))

"""An unrolled LSTM on an int8-only chip: the time steps (a Gather of one constant index)
and the gates (Slices along the last axis, which Warboy refuses) become parts of Splits
whose other parts nobody reads; the gates' Sigmoid and Tanh become int8 tables, so the
cell runs on the NPU and its program still matches onnxruntime."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.schedule.legalize import legalize
from npuc.ir.decisions import log_of
from npuc.targets import get_target

HIDDEN, STEPS = 4, 2


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _lstm(path):
    """Two LSTM steps written out with MatMul, Gather, Slice, Sigmoid, Tanh, Mul, Add."""
    rng = np.random.default_rng(0)
    inits = [_const("W", rng.normal(0, 0.4, (8, 4 * HIDDEN)).astype(np.float32)),
             _const("R", rng.normal(0, 0.4, (HIDDEN, 4 * HIDDEN)).astype(np.float32)),
             _const("ax", np.array([1], np.int64))]
    inits += [_const(f"b{k}", np.array([k * HIDDEN], np.int64)) for k in range(5)]
    inits += [_const(f"t{t}", np.array(t, np.int64)) for t in range(STEPS)]
    # the input projection of every step at once, as exporters write it
    nodes, h, c = [helper.make_node("MatMul", ["x", "W"], ["xw"], name="xw")], "h_init", "c_init"
    for t in range(STEPS):
        def n(op, ins, out, t=t, **kw):
            nodes.append(helper.make_node(op, ins, [f"{out}{t}"], name=f"{out}{t}", **kw))
            return f"{out}{t}"
        x = n("Gather", ["xw", f"t{t}"], "x_t", axis=0)
        z = n("Add", [x, n("MatMul", [h, "R"], "hr")], "z")
        gate = [n("Slice", [z, f"b{k}", f"b{k + 1}", "ax"], f"gate{k}_") for k in range(4)]
        i, f, o = (n("Sigmoid", [gate[k]], f"sig{k}_") for k in (0, 1, 3))
        g = n("Tanh", [gate[2]], "g")
        c = n("Add", [n("Mul", [f, c], "fc"), n("Mul", [i, g], "ig")], "c")
        h = n("Mul", [o, n("Tanh", [c], "tc")], "h")
    graph = helper.make_graph(
        nodes, "lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [STEPS, 1, 8]),
         helper.make_tensor_value_info("h_init", TensorProto.FLOAT, [1, HIDDEN]),
         helper.make_tensor_value_info("c_init", TensorProto.FLOAT, [1, HIDDEN])],
        [helper.make_tensor_value_info(h, TensorProto.FLOAT, [1, HIDDEN])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _inputs(seed):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(0, 1, (STEPS, 1, 8)).astype(np.float32),
            "h_init": rng.normal(0, 0.5, (1, HIDDEN)).astype(np.float32),
            "c_init": rng.normal(0, 0.5, (1, HIDDEN)).astype(np.float32)}


def test_steps_and_gates_become_splits_on_warboy(tmp_path):
    graph = npuc.load_model(_lstm(str(tmp_path / "lstm.onnx")))
    assert legalize(graph, get_target("warboy-2pe")) == STEPS * 5
    assert not {"Gather", "Slice"} & {n.op_type for n in graph.nodes}
    reasons = {d.subject: d.reason for d in log_of(graph).by_stage("legalize")}
    assert "computed with Split, Reshape" in reasons["x_t0"]
    assert "height axis" in reasons["gate0_0"] and "computed with Split" in reasons["gate0_0"]
    # a chip that slices any axis keeps its Slices (and has no Gather: Split, Reshape)
    kept = npuc.load_model(str(tmp_path / "lstm.onnx"))
    assert legalize(kept, get_target("x220-enterprise")) == STEPS
    assert sum(n.op_type == "Slice" for n in kept.nodes) == 4 * STEPS


def test_unrolled_lstm_runs_on_the_npu_and_verifies(tmp_path):
    path = _lstm(str(tmp_path / "lstm.onnx"))
    calib = [_inputs(s) for s in range(4)]
    for chip in ("warboy-2pe", "x220-enterprise"):
        r = npuc.verify(path, chip, inputs=_inputs(9), calibration=calib)
        assert r.passed, chip
        on_cpu = [n for g in r.compiled.schedule.groups if g.device == "cpu"
                  for n in g.nodes]
        assert on_cpu == [], (chip, on_cpu)

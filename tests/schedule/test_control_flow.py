"""Control flow: folded when its condition is known, run on the host CPU when not."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from npuc.compiler.driver import verify
from npuc.compiler.schedule.prepare import load_static
from npuc.ir.decisions import log_of


def _const(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def _branch(name, nodes, out, shape, inits=()):
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(
        out, TensorProto.FLOAT, shape)], list(inits))


def shape_if_model(out_is_graph_output: bool):
    """y = Relu(x), doubled when axis 1 has size 1 (a test on a shape, as exporters write
    them): If(Equal(Gather(Shape(r), 1), 1)) then Mul(r, 2) else Identity(r)."""
    then = _branch("then", [helper.make_node("Mul", ["r", "two"], ["sq"])], "sq",
                   ["N", "C", 8], [_const("two", np.array(2, np.float32))])
    other = _branch("else", [helper.make_node("Identity", ["r"], ["same"])], "same",
                    ["N", "C", 8])
    out = "y" if out_is_graph_output else "z"
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["d"], axis=0),
             helper.make_node("Equal", ["d", "one"], ["c"]),
             helper.make_node("If", ["c"], [out], then_branch=then, else_branch=other)]
    if not out_is_graph_output:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["y"]))
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", "C", 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["N", "C", 8])], [_const("one", np.array(1, np.int64))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _ort(model, feeds):
    return ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("graph_output", [True, False])
@pytest.mark.parametrize("channels", [1, 3])
def test_an_if_known_from_shapes_is_replaced_by_its_branch(graph_output, channels):
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.schedule.shapes import parse_shapes

    model = shape_if_model(graph_output)
    graph, _ = load_static(model, shapes=parse_shapes([f"C={channels}"])[0])
    assert not any(n.op_type == "If" for n in graph.nodes)
    assert [v.name for v in graph.outputs] == ["y"]
    x = np.random.default_rng(0).standard_normal((1, channels, 8)).astype(np.float32)
    np.testing.assert_allclose(execute(graph, {"x": x})["y"], _ort(model, {"x": x})[0],
                               rtol=1e-6)


def test_a_folded_if_compiles_and_verifies():
    x = np.random.default_rng(1).standard_normal((1, 1, 8)).astype(np.float32)
    r = verify(shape_if_model(False), "rngd", inputs={"x": x})
    assert r.passed, r.outputs
    assert r.compiled.summary["nodes_on_cpu"] == 0


def runtime_if_model():
    """A condition read from an input: r = Relu(x) on the NPU, then If(flag > 0) picks
    r * w or r + w on the host (both read r and w from outside), then Sigmoid."""
    w = _const("w", np.linspace(-1, 1, 8).astype(np.float32))
    then = _branch("then", [helper.make_node("Mul", ["r", "w"], ["a"])], "a", [1, 4, 8])
    other = _branch("else", [helper.make_node("Add", ["r", "w"], ["b"])], "b", [1, 4, 8])
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Greater", ["flag", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["z"], then_branch=then, else_branch=other),
             helper.make_node("Sigmoid", ["z"], ["y"])]
    g = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8]),
                     helper.make_tensor_value_info("flag", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
        [w, _const("zero", np.array(0, np.int64))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("target", ["warboy-2pe", "rngd"])
def test_an_if_known_at_run_time_runs_on_the_host(target):
    model = runtime_if_model()
    x = np.random.default_rng(2).standard_normal((1, 4, 8)).astype(np.float32)
    compiled = None
    for flag in (1, -1):
        feeds = {"x": x, "flag": np.array(flag, np.int64)}
        r = verify(model, target, inputs=feeds, quantize="none")
        assert r.passed, r.outputs
        compiled = r.compiled
    groups = {g.device for g in compiled.schedule.groups}
    assert groups == {"npu", "cpu"}
    assert any(c["op"] == "cpu" and "captures" in c for c in compiled.program["commands"])
    placed = [d for d in log_of(compiled.graph).by_stage("partition") if d.action == "cpu"]
    assert any("only known at run time" in d.reason for d in placed if d.data["op"] == "If")


def loop_model():
    """y = Relu(x) + n * Relu(x), by a Loop of n steps whose body reads r from outside."""
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "r"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1, 4, 8])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1, 4, 8])])
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Loop", ["n", "", "r"], ["z"], body=body),
             helper.make_node("Relu", ["z"], ["y"])]
    g = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8]),
                     helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_a_loop_runs_on_the_host_with_the_npu_parts_around_it():
    x = np.random.default_rng(3).standard_normal((1, 4, 8)).astype(np.float32)
    r = verify(loop_model(), "rngd", inputs={"x": x, "n": np.array(3, np.int64)},
               quantize="none")
    assert r.passed, r.outputs
    devices = {n: g.device for g in r.compiled.schedule.groups for n in g.nodes}
    assert sorted(devices.values()) == ["cpu", "npu", "npu"]


def scan_model():
    """A running sum over the rows of Relu(x), plus a value read from outside the body."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "row"], ["t"]),
         helper.make_node("Add", ["t", "b"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["each"])], "body",
        [helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [8]),
         helper.make_tensor_value_info("row", TensorProto.FLOAT, [8])],
        [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [8]),
         helper.make_tensor_value_info("each", TensorProto.FLOAT, [8])])
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Sigmoid", ["s0"], ["b"]),
             helper.make_node("Scan", ["s0", "r"], ["s", "y"], body=body, num_scan_inputs=1)]
    g = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8]),
                     helper.make_tensor_value_info("s0", TensorProto.FLOAT, [8])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [8]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_a_scan_runs_on_the_host_and_the_program_is_deterministic():
    from npuc.compiler.driver import compile

    rng = np.random.default_rng(4)
    feeds = {"x": rng.standard_normal((4, 8)).astype(np.float32),
             "s0": rng.standard_normal(8).astype(np.float32)}
    r = verify(scan_model(), "atom", inputs=feeds, quantize="none")
    assert r.passed, r.outputs
    again = compile(scan_model(), "atom", quantize="none", input_shapes={"x": (4, 8)})
    assert again.files["program.json"] == compile(
        scan_model(), "atom", quantize="none").files["program.json"]

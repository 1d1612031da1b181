"""An epilogue a chip cannot fuse runs as its own NPU group; the Conv stays on the NPU."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from npuc.compiler.driver import verify
from npuc.ir.decisions import log_of


def conv_hardsigmoid():
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((8, 4, 3, 3)).astype(np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("HardSigmoid", ["c"], ["y"], alpha=0.2, beta=0.5)], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_rngd_runs_conv_and_hardsigmoid_as_two_npu_groups():
    x = np.random.default_rng(1).standard_normal((1, 4, 16, 16)).astype(np.float32)
    r = verify(conv_hardsigmoid(), "rngd", inputs={"x": x})
    assert r.passed, r.outputs
    groups = r.compiled.schedule.groups
    assert all(g.device == "npu" for g in groups)
    ops = {n.op_type for n in r.compiled.graph.nodes}
    assert "Conv" in ops and "HardSigmoid" in ops
    split = [d for d in log_of(r.compiled.graph).by_stage("fusion")
             if d.action == "epilogue split"]
    assert split and "does not fuse HardSigmoid after Conv" in split[0].reason

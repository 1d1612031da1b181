"""The quantizer's integer ops cost the work of the float ops they compute."""

import npuc
from npuc.compiler.quantize import quantize
from npuc.ir.schema import base_op
from npuc.targets import get_target
from npuc.targets.cost import estimate_node
from npuc.targets.work import gemm_views, vector_elements


def _quantized():
    from npuc.compiler.schedule.prepare import load_static

    g, _ = load_static("zoo:resnet-tiny", 1)  # every shape known
    cal = [npuc.zoo.sample_inputs("resnet-tiny", batch=1, seed=s) for s in range(2)]
    return g, quantize(g, "warboy-2pe", cal, progress=False)


def test_integer_ops_have_the_work_of_their_float_ops():
    g, q = _quantized()
    floats = {n.name: n for n in q.meta["quantize"]["float_graph"].nodes}
    seen = set()
    for node in q.nodes:
        if node.domain != "npuc":
            continue
        seen.add(node.op_type)
        if node.op_type in ("QConv", "QMatMul"):
            macs = sum(v.macs for v in gemm_views(node))
            twin = floats[node.name]
            assert macs > 0 and macs == sum(v.macs for v in gemm_views(twin)), node.name
            assert estimate_node(node, get_target("warboy-2pe")).precision == "int8"
        else:
            assert not gemm_views(node) and vector_elements(node) > 0
    assert {"QConv", "QMatMul", "QAdd"} <= seen


def test_base_op_names():
    class N:
        domain = "npuc"

    for op, base in {"QConv": "Conv", "QMatMul": "MatMul", "QAdd": "Add", "QMul": "Mul",
                     "Lut": "Lut", "Requantize": "Requantize", "FusedConv": "Conv"}.items():
        n = N()
        n.op_type = op
        assert base_op(n) == base

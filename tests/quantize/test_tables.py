"""Elementwise functions of one int8 tensor become one table, also when the function is
written as a sum or product of functions of that tensor (a decomposed HardSwish, SiLU,
a square): the values between them are never rounded."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.quantize import quantize

FORMS = {
    # paddle2onnx's HardSwish between two learnable scalar affines
    "hardswish": [("Mul", ["y", "a"], "y1"), ("Add", ["y1", "b"], "y2"),
                  ("Add", ["y2", "three"], "y3"), ("Clip", ["y3", "zero", "six"], "y4"),
                  ("Mul", ["y2", "y4"], "y5"), ("Div", ["y5", "six"], "out")],
    "silu": [("Sigmoid", ["y"], "s"), ("Mul", ["y", "s"], "out")],
    "square": [("Mul", ["y", "y"], "out")],
}
FUNCS = {
    "hardswish": lambda y: (lambda z: z * np.clip(z + 3, 0, 6) / 6)(y * 0.9 + 0.1),
    "silu": lambda y: y / (1 + np.exp(-y)),
    "square": lambda y: y * y,
}


def _model(form, seed=0):
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w", "bias"], ["y"], name="conv", pads=[1] * 4)]
    nodes += [helper.make_node(op, ins, [out], name=out) for op, ins, out in FORMS[form]]
    inits = {"w": rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32),
             "bias": rng.normal(0, 0.1, 4).astype(np.float32), "a": np.float32(0.9),
             "b": np.float32(0.1), "three": np.float32(3), "zero": np.float32(0),
             "six": np.float32(6)}
    g = helper.make_graph(
        nodes, form, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return npuc.import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def _samples(n, seed):
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(n)]


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_function_is_one_table_after_the_conv(form):
    q = quantize(_model(form), "warboy-2pe", _samples(4, 0), progress=False)
    ops = [n.op_type for n in q.nodes]
    assert ops.count("Lut") == 1 and "QMul" not in ops and "QAdd" not in ops, ops
    lut = next(n for n in q.nodes if n.op_type == "Lut")
    assert lut.inputs[0].producer.op_type == "QConv"


@settings(max_examples=10, deadline=None)
@given(level=st.integers(-128, 127), form=st.sampled_from(sorted(FORMS)))
def test_the_table_is_the_float_function_of_the_level_rounded_once(level, form):
    """Entry ``level`` of the table is the float function of that level's value, rounded
    once to the output's scale."""
    q = quantize(_model(form), "warboy-2pe", _samples(4, 0), progress=False)
    lut = next(n for n in q.nodes if n.op_type == "Lut")
    src, out = lut.inputs[0].type.quant, lut.outputs[0].type.quant
    x = (level - int(src.zero_point)) * np.float32(src.scale)
    want = np.clip(np.round(np.float32(FUNCS[form](np.float32(x))) / np.float32(out.scale))
                   + int(out.zero_point), -128, 127)
    assert abs(int(lut.inputs[1].const[level + 128]) - want) <= 1


def test_one_table_is_closer_to_float_than_the_chain_of_rounded_parts():
    g = _model("hardswish")
    q = quantize(g, "warboy-2pe", _samples(8, 0), progress=False)
    err = [np.abs(execute(q, s)["out"] - execute(g, s)["out"]).max() for s in _samples(4, 1)]
    scale = float(next(n for n in q.nodes if n.op_type == "Lut").outputs[0].type.quant.scale)
    # the conv's own rounding carried through a slope of at most ~1.5, plus one output step
    assert max(err) < 4 * scale

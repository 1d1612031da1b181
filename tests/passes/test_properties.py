"""Every pass keeps what a graph computes: random small graphs, and the tiny zoo models.

The random graphs are chains of the blocks the passes look for (Conv with Pad, bias,
BatchNorm and activations; GELU in both forms; decomposed LayerNorm; attention; Shape
chains; Transpose pairs; neutral arithmetic), so that each pass has work to do.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import npuc
from npuc.compiler.executor.inputs import random_inputs
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.passes import registered
from npuc.ir.graph import Graph
from npuc.ir.infer import infer_node
from npuc.ir.types import tensor
from npuc.ir.verifier import verify
from tests.strategies import graphs

C, H, W = 4, 6, 6
SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


class Maker:
    """Adds nodes with inferred types; constants drawn from a seeded generator."""

    def __init__(self, g: Graph, seed: int):
        self.g, self.rng = g, np.random.default_rng(seed)

    def op(self, op, *ins, **attrs):
        node = self.g.create_node(op, list(ins), [op.lower()], attrs)
        node.outputs[0].type = infer_node(node)[0]
        return node.outputs[0]

    def const(self, value):
        return self.g.add_constant(None, np.asarray(value, np.float32))

    def rand(self, *shape, positive=False):
        a = self.rng.standard_normal(shape).astype(np.float32)
        return self.const(np.abs(a) + 0.5 if positive else a)


def conv_block(m, x, draw):
    if draw(st.booleans()):
        pads = m.g.add_constant(None, np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
        x = m.op("Pad", x, pads)
        y = m.op("Conv", x, m.rand(C, C, 3, 3), *([m.rand(C)] if draw(st.booleans()) else []))
    else:
        y = m.op("Conv", x, m.rand(C, C, 1, 1))
    if draw(st.booleans()):
        y = m.op("BatchNormalization", y, m.rand(C), m.rand(C), m.rand(C), m.rand(C, positive=True))
    if draw(st.booleans()):
        y = m.op("Add", y, m.rand(1, C, 1, 1))
    act = draw(st.sampled_from(["", "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSwish"]))
    if act == "Clip":
        y = m.op("Clip", y, m.const(0.0), m.const(6.0))
    elif act == "LeakyRelu":
        y = m.op("LeakyRelu", y, alpha=0.2)
    elif act:
        y = m.op(act, y)
    return y


def gelu_block(m, x, draw):
    if draw(st.booleans()):
        e = m.op("Erf", m.op("Div", x, m.const(math.sqrt(2))))
        return m.op("Mul", m.op("Mul", x, m.op("Add", e, m.const(1.0))), m.const(0.5))
    inner = m.op("Add", x, m.op("Mul", m.const(0.044715), m.op("Pow", x, m.const(3.0))))
    t = m.op("Tanh", m.op("Mul", m.const(math.sqrt(2 / math.pi)), inner))
    return m.op("Mul", m.op("Mul", m.const(0.5), x), m.op("Add", m.const(1.0), t))


def layernorm_block(m, x, draw):
    d = m.op("Sub", x, m.op("ReduceMean", x, axes=[-1]))
    var = m.op("ReduceMean", m.op("Pow", d, m.const(2.0)), axes=[-1])
    n = m.op("Div", d, m.op("Sqrt", m.op("Add", var, m.const(1e-5))))
    return m.op("Add", m.op("Mul", n, m.rand(W)), m.rand(W))


def attention_block(m, x, draw):
    kt = m.op("Transpose", x, perm=[0, 1, 3, 2])
    s = m.op("Div", m.op("MatMul", x, kt), m.const(2.0))
    if draw(st.booleans()):
        s = m.op("Add", s, m.rand(1, 1, 1, W))
    return m.op("MatMul", m.op("Softmax", s, axis=-1), x)


def shape_block(m, x, draw):
    idx = m.g.add_constant(None, np.array([0, 1], np.int64))
    head = m.op("Gather", m.op("Shape", x), idx, axis=0)
    target = m.op("Concat", head, m.g.add_constant(None, np.array([-1], np.int64)), axis=0)
    flat = m.op("Reshape", x, target)
    return m.op("Reshape", flat, m.g.add_constant(None, np.array([1, C, H, W], np.int64)))


def layout_block(m, x, draw):
    t = m.op("Transpose", x, perm=[0, 2, 3, 1])
    t = m.op(draw(st.sampled_from(["Relu", "Neg", "Identity"])), t)
    t = m.op("Add", t, m.rand(W, C) if draw(st.booleans()) else m.const(0.0))
    return m.op("Transpose", m.op("Mul", t, m.const(1.0)), perm=[0, 3, 1, 2])


BLOCKS = [conv_block, gelu_block, layernorm_block, attention_block, shape_block, layout_block]


@st.composite
def model_graphs(draw):
    g = Graph("model")
    g.opset = {"": 17}
    m = Maker(g, draw(st.integers(0, 2**16)))
    x = g.add_input("x", tensor("f32", [1, C, H, W]))
    outs = []
    for _ in range(draw(st.integers(1, 4))):
        x = draw(st.sampled_from(BLOCKS))(m, x, draw)
        if draw(st.integers(0, 4)) == 0:
            outs.append(x)
    g.outputs = list(dict.fromkeys(outs + [x]))
    verify(g)
    return g


def assert_same(before: Graph, after: Graph, rtol=1e-4, atol=1e-5):
    inputs = random_inputs(before, seed=1)
    want, got = execute(before, inputs), execute(after, inputs)
    assert list(want) == list(got), "the outputs changed names"
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol, err_msg=name)


PASSES = sorted(registered())


@pytest.mark.parametrize("name", PASSES)
@SETTINGS
@given(g=model_graphs())
def test_pass_keeps_results_on_model_graphs(name, g):
    assert_same(g, npuc.optimize(g, passes=name, verify=True))


@pytest.mark.parametrize("level", [1, 2, 3])
@SETTINGS
@given(g=model_graphs())
def test_level_keeps_results(level, g):
    assert_same(g, npuc.optimize(g, level=level, verify=True))


@pytest.mark.parametrize("name", PASSES)
@SETTINGS
@given(g=graphs(onnx_compatible=True))
def test_pass_keeps_results_on_elementwise_graphs(name, g):
    assert_same(g, npuc.optimize(g, passes=name, verify=True))


@pytest.mark.parametrize("model", ["resnet-tiny", "mobilenetv2-tiny", "bert-tiny", "gpt2-tiny",
                                   "vit-tiny", "llama-tiny"])
def test_zoo_models_after_O2(model):
    g = npuc.load_model(f"zoo:{model}")
    opt = npuc.optimize(g, level=2, verify=True)
    assert len(opt) < len(g)
    inputs = npuc.zoo.sample_inputs(model)
    want, got = execute(g, inputs), execute(opt, inputs)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)

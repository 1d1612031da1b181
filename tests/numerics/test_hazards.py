"""Numeric hazards are found at compile time, named, and the program keeps the float
answer: a log-mel front end whose power spectrogram overflows fp16 and collapses in int8
and fp8 per-tensor scales; NaN and infinite weights."""

import numpy as np
import pytest

import npuc
from npuc.ir.decisions import log_of
from npuc.ir.errors import ModelError
from tests.accuracy.logmel import logmel_model, speech_like


@pytest.fixture(scope="module")
def logmel(tmp_path_factory):
    import onnx

    path = tmp_path_factory.mktemp("logmel") / "logmel.onnx"
    onnx.save(logmel_model(), path)
    return str(path)


@pytest.mark.parametrize("chip,precision,kind", [("atom", "fp16", "fp16-overflow"),
                                                 ("warboy-2pe", "int8", "int8-collapse"),
                                                 ("atom", "int8", "int8-collapse")])
def test_the_compiled_program_keeps_the_float_answer(logmel, chip, precision, kind):
    """Compiled and simulated end to end, per frame, on held-out samples: the hazard is
    found and named, and the program's answer is the float model's."""
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.executor.simulator import simulate
    from npuc.compiler.schedule.prepare import load_static

    held_out = speech_like(3, seed=7)
    r = npuc.verify(logmel, chip, quantize=precision, calibration=speech_like(4, seed=1),
                    inputs=held_out[0])
    if kind is not None:
        found = [d for d in log_of(r.compiled.graph) if d.action == "hazard"]
        assert any(d.data["kind"] == kind for d in found), [str(d) for d in found]
    assert r.passed, r.to_json()
    float_graph, _ = load_static(logmel, 1)
    for feeds in held_out:
        got = simulate(r.compiled.program, r.compiled.weights, feeds)["scores"]
        want = execute(float_graph, feeds)["scores"]
        assert np.isfinite(got).all()
        assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.9


def test_fp8_flush_to_zero_is_found():
    """A power spectrum under one fp8 scale: most of it would become 0 in the filterbank
    product, which is then computed in bf16."""
    r = npuc.compile(logmel_model(), "rngd", quantize="fp8",
                     calibration=speech_like(4, seed=1))
    found = [d for d in log_of(r.graph) if d.action == "hazard"]
    assert any(d.data["kind"] == "fp8-collapse" and "bf16" in d.reason for d in found)


def test_an_overflowing_layer_runs_on_the_cpu_of_a_chip_without_float32(logmel):
    r = npuc.compile(logmel, "atom", quantize="fp16", calibration=speech_like(4, seed=1))
    overflowing = {d.subject for d in log_of(r.graph) if d.action == "hazard"}
    cpu = {n for g in r.schedule.groups if g.device == "cpu" for n in g.nodes}
    matrix = {n.name for n in r.graph.nodes if n.op_type in ("MatMul", "FusedMatMul")}
    assert overflowing & matrix and overflowing & matrix <= cpu
    assert any("has no float32 arithmetic" in d.reason for d in log_of(r.graph)
               if d.stage == "partition")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weight_is_refused_naming_the_initializer(tmp_path, bad):
    import onnx
    from onnx import numpy_helper

    proto = logmel_model()
    init = next(t for t in proto.graph.initializer if t.name == "w")
    w = numpy_helper.to_array(init).copy()
    w[3, 1] = bad
    init.CopyFrom(numpy_helper.from_array(w, "w"))
    path = str(tmp_path / "m.onnx")
    onnx.save(proto, path)
    with pytest.raises(ModelError, match=r"m\.onnx: initializer 'w' .* holds (NaN|an infinite value)"):
        npuc.compile(path, "rngd")


def test_infinite_mask_constants_are_meant(tmp_path):
    """-inf in a mask constant added before a Softmax is not a broken weight."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    mask = np.zeros((1, 4), np.float32)
    mask[0, 2] = -np.inf
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["s"], name="scores"),
         helper.make_node("Add", ["s", "mask"], ["masked"], name="mask"),
         helper.make_node("Softmax", ["masked"], ["p"], axis=-1, name="softmax")],
        "masked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w"),
         numpy_helper.from_array(mask, "mask")])
    path = str(tmp_path / "masked.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    r = npuc.verify(path, "rngd")
    assert r.passed, r.to_json()
    from npuc.compiler.executor.simulator import simulate

    p = simulate(r.compiled.program, r.compiled.weights,
                 {"x": rng.standard_normal((1, 8)).astype(np.float32)})["p"]
    assert p[0, 2] == 0 and np.isclose(p.sum(), 1, atol=1e-2)

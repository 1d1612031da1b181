"""fp16 overflow and int8 range collapse are found at compile time and fixed."""

import numpy as np

import npuc
from npuc.compiler.accuracy import agreement
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.quantize import quantize
from npuc.compiler.quantize.hazards import Magnitude, find_hazards, magnitudes
from npuc.ir.decisions import log_of

from .logmel import logmel_model, speech_like


def test_log_mel_front_end_has_both_hazards():
    g = npuc.import_onnx(logmel_model())
    found = find_hazards(g, magnitudes(g, speech_like(4)))
    kinds = {(h.kind, h.value) for h in found}
    assert ("fp16-overflow", "power") in kinds
    assert ("int8-collapse", "mel_eps") in kinds
    assert all(h.message for h in found)


def test_int8_collapse_is_fixed_and_logged():
    g = npuc.import_onnx(logmel_model())
    cal, held = speech_like(8, seed=1), speech_like(8, seed=2)
    q = quantize(g, "rngd", cal, precision="int8", progress=False)
    hazards = [d for d in log_of(q) if d.action == "hazard"]
    assert any(d.data["kind"] == "int8-collapse" for d in hazards)
    a = agreement([execute(g, s) for s in held], [execute(q, s) for s in held])
    assert a.changed_share <= 0.125 and a.min_sqnr_db > 10, a.summary()  # 3.5 dB unfixed


def test_fp16_overflow_is_fixed_on_a_chip_without_bf16():
    g = npuc.import_onnx(logmel_model())
    cal = speech_like(4, seed=1)
    q = quantize(g, "atom", cal, precision="fp16", progress=False)
    assert any(d.action == "hazard" and d.data["kind"] == "fp16-overflow" for d in log_of(q))
    out = execute(q, cal[0])["scores"]
    assert np.isfinite(out).all()


def test_magnitudes_merge_exactly():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 5, 1000), rng.normal(0, 1e-3, 1000)
    whole, one, two = Magnitude(), Magnitude(), Magnitude()
    whole.observe(np.concatenate([a, b]))
    one.observe(a)
    two.observe(b)
    one.merge(two)
    assert np.array_equal(whole.hist, one.hist) and whole.lo == one.lo and whole.hi == one.hi
    assert 0.45 < whole.share_below(0.01) < 0.55


def test_compile_warns_about_hazards_on_the_terminal(tmp_path, capsys):
    import onnx

    from npuc.compiler.cli import main

    onnx.save(logmel_model(), tmp_path / "m.onnx")
    np.savez(tmp_path / "cal.npz", x=np.concatenate([s["x"] for s in speech_like(4)]))
    code = main(["compile", str(tmp_path / "m.onnx"), "-t", "atom", "--calibration",
                 str(tmp_path / "cal.npz"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0 and "beyond fp16's largest number" in err


def test_a_second_quantization_of_the_same_graph_logs_its_own_hazards_once():
    import npuc
    from npuc.compiler.quantize import quantize
    from npuc.ir.decisions import log_of

    from .logmel import logmel_model, speech_like

    g = npuc.import_onnx(logmel_model())
    first = quantize(g, "rngd", speech_like(4, seed=1), precision="int8", progress=False)
    again = quantize(g, "rngd", speech_like(4, seed=1), precision="int8", progress=False)
    hazards = [[str(d) for d in log_of(q) if d.action == "hazard"] for q in (first, again)]
    assert hazards[0] and hazards[0] == hazards[1]
    assert not [d for d in log_of(g) if d.action == "hazard"]


def _masked_scores_model(reader: str):
    """scores + (1 - mask) * float32 min, then ``reader`` (Softmax, or a MatMul that
    would really see the huge values)."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.float32(1.0), "one"),
             numpy_helper.from_array(np.float32(np.finfo(np.float32).min), "lowest"),
             numpy_helper.from_array(np.ones((8, 8), np.float32), "w")]
    nodes = [helper.make_node("Sub", ["one", "mask"], ["inverted"]),
             helper.make_node("Mul", ["inverted", "lowest"], ["additive"]),
             helper.make_node("Add", ["scores", "additive"], ["masked"])]
    if reader == "Softmax":
        nodes.append(helper.make_node("Softmax", ["masked"], ["out"], axis=-1))
    else:
        nodes.append(helper.make_node("MatMul", ["masked", "w"], ["out"]))
    graph = helper.make_graph(
        nodes, "masked",
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 8, 8]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_additive_softmax_mask_is_not_an_fp16_overflow():
    """finfo.min into a softmax gives the same probabilities at fp16 (exp is 0 either
    way); the same values into a product are a hazard."""
    rng = np.random.default_rng(0)
    samples = [{"scores": rng.normal(size=(1, 8, 8)).astype(np.float32),
                "mask": (rng.random((1, 1, 8)) < 0.7).astype(np.float32)} for _ in range(2)]
    found = {}
    for reader in ("Softmax", "MatMul"):
        g = npuc.import_onnx(_masked_scores_model(reader))
        found[reader] = {h.value for h in find_hazards(g, magnitudes(g, samples))
                         if h.kind == "fp16-overflow"}
    assert found["Softmax"] == set()
    assert found["MatMul"] == {"additive", "masked"}


def test_bert_attention_mask_stays_on_the_npu_of_a_chip_without_float32():
    r = npuc.compile("zoo:bert-tiny", "atom", quantize="int8", calibration="random:1")
    assert r.summary["nodes_on_cpu"] == 0
    assert not [d for d in log_of(r.graph) if d.action == "hazard"]

"""ONNX import and export: the same graph back, the same outputs in onnxruntime."""

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings

from npuc import zoo
from npuc.compiler.frontend.onnx_export import export_onnx
from npuc.compiler.frontend.onnx_import import import_onnx
from npuc.ir.printer import print_graph
from tests.strategies import graphs

ort = pytest.importorskip("onnxruntime")


def run_ort(model: onnx.ModelProto, feeds: dict) -> list:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(graphs(onnx_compatible=True))
def test_import_export_import_gives_the_same_graph(g):
    first = export_onnx(g)
    onnx.checker.check_model(first, full_check=True)
    again = import_onnx(first)
    assert print_graph(again) == print_graph(import_onnx(export_onnx(again)))
    feeds = {v.name: np.random.default_rng(0).standard_normal(
        [1 if isinstance(d, str) else d for d in v.type.shape]).astype(np.float32)
        for v in g.inputs}
    for a, b in zip(run_ort(first, feeds), run_ort(export_onnx(again), feeds)):
        np.testing.assert_array_equal(a, b)


TINY = ["resnet-tiny", "mobilenetv2-tiny", "bert-tiny", "gpt2-tiny", "vit-tiny"]


@pytest.mark.parametrize("name", TINY)
def test_zoo_models_round_trip_through_text_and_onnx(name, tmp_path):
    from npuc.ir.parser import load_text, save_text

    model = zoo.build(name)
    g = import_onnx(model)
    save_text(g, str(tmp_path / "m.npuir"))
    text = (tmp_path / "m.npuir").read_text()
    g2 = load_text(str(tmp_path / "m.npuir"))
    save_text(g2, str(tmp_path / "m2.npuir"))
    assert (tmp_path / "m2.npuir").read_text().replace("m2.npuir", "m.npuir") == text
    assert (tmp_path / "m2.npuir.bin").read_bytes() == (tmp_path / "m.npuir.bin").read_bytes()
    feeds = zoo.sample_inputs(name)
    want = run_ort(model, feeds)
    got = run_ort(export_onnx(g2), feeds)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_export_is_deterministic(tmp_path):
    g = import_onnx(zoo.build("bert-tiny"))
    export_onnx(g, tmp_path / "a.onnx")
    export_onnx(import_onnx(str(tmp_path / "a.onnx")), tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_symbolic_dimensions_survive(tmp_path):
    g = import_onnx(zoo.build("bert-tiny"))
    assert any(isinstance(d, str) for v in g.inputs for d in v.type.shape)
    back = export_onnx(g)
    dims = back.graph.input[0].type.tensor_type.shape.dim
    assert any(d.dim_param for d in dims)


def test_every_opset_from_7_imports():
    from onnx import TensorProto, helper

    for version in range(7, onnx.defs.onnx_opset_version() + 1):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
        m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                                                [x], [y]),
                              opset_imports=[helper.make_opsetid("", version)])
        g = import_onnx(m)
        assert g.opset[""] == version


def test_external_data_inside_the_folder_is_read(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])
    m = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])],
                                            "g", [x], [y], [w]),
                          opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(m, tmp_path / "m.onnx", save_as_external_data=True,
                    location="weights.bin", size_threshold=0)
    g = import_onnx(str(tmp_path / "m.onnx"))
    assert np.array_equal(g.constants["w"].const, numpy_helper.to_array(w))

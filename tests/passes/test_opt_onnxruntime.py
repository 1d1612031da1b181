"""What ``npuc opt`` writes loads in onnxruntime and computes what the model computed."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from npuc import zoo
from npuc.compiler.cli import main


def _run(path, feeds):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(
        None, feeds)


def _pyramid(path):
    """Strided convolutions and an upsampling on a symbolic height and width, as text
    detectors are exported: tensors of different sizes whose shapes all come from H, W."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Resize", ["r2", "", "scales"], ["up"], mode="nearest"),
        helper.make_node("Add", ["up", "r1"], ["y"]),
    ]
    g = helper.make_graph(nodes, "pyramid",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                         ["N", 3, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, None, None])],
                          [w1, w2, scales])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_symbolic_sizes_stay_apart(tmp_path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "opt.onnx"
    _pyramid(src)
    assert main(["opt", str(src), "-O2", "-o", str(out)]) == 0, capsys.readouterr()
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 24)).astype(np.float32)
    np.testing.assert_allclose(_run(out, {"x": x})[0], _run(src, {"x": x})[0],
                               rtol=1e-4, atol=1e-4)


def test_opt_specialises_shapes(tmp_path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "opt.onnx"
    _pyramid(src)
    assert main(["opt", str(src), "--shape", "x=1x3x8x12", "-o", str(out)]) == 0
    graph = onnx.load(str(out)).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, 8, 12]


@pytest.mark.parametrize("name", ["resnet-tiny", "mobilenetv2-tiny", "bert-tiny", "vit-tiny"])
@pytest.mark.parametrize("level", [1, 2])
def test_zoo_models_optimized_run_in_onnxruntime(tmp_path, capsys, name, level):
    src, out = tmp_path / "m.onnx", tmp_path / "opt.onnx"
    onnx.save(zoo.build(name), str(src))
    assert main(["opt", str(src), f"-O{level}", "-o", str(out)]) == 0, capsys.readouterr()
    feeds = zoo.sample_inputs(name, batch=2, seed=3)
    for got, want in zip(_run(out, feeds), _run(src, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_symbols_made_up_inside_the_graph_are_not_exported(tmp_path):
    """Shape inference run twice names two different sizes 'unk__0'; the export must not
    promise onnxruntime that they are equal."""
    from npuc.compiler.frontend.load import load_model, save_model
    from npuc.ir.types import TensorType

    src, out = tmp_path / "m.onnx", tmp_path / "out.onnx"
    _pyramid(src)
    graph = load_model(str(src))
    for node in graph.nodes:
        if node.op_type in ("Relu", "Resize"):  # r1, r2 and up: three sizes, one made-up name
            v = node.outputs[0]
            v.type = TensorType(v.type.dtype, ("N", 4, "unk__0", "unk__1"))
    save_model(graph, str(out))
    infos = onnx.load(str(out)).graph.value_info
    assert not any(d.dim_param.startswith("unk") for vi in infos
                   for d in vi.type.tensor_type.shape.dim)
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 24)).astype(np.float32)
    np.testing.assert_allclose(_run(out, {"x": x})[0], _run(src, {"x": x})[0],
                               rtol=1e-4, atol=1e-4)


def test_trained_classifier_optimized_runs_in_onnxruntime(tmp_path, capsys):
    """A paddle2onnx export with anonymous dimensions (f32[-1, 3, ?, ?])."""
    import pathlib

    src = pathlib.Path(__file__).parents[1] / "data" / "trained" / "ppocr_mobile_v2_cls.onnx"
    out = tmp_path / "opt.onnx"
    assert main(["opt", str(src), "-O2", "-o", str(out)]) == 0, capsys.readouterr()
    x = np.random.default_rng(5).standard_normal((2, 3, 48, 160)).astype(np.float32)
    np.testing.assert_allclose(_run(out, {"x": x})[0], _run(src, {"x": x})[0],
                               rtol=1e-4, atol=1e-5)

"""The model zoo: every model is valid ONNX, runs, and is the same on every build."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from npuc import zoo
from npuc.compiler.zoo.registry import ENTRIES
from npuc.ir.errors import NpucError

TINY = [name for name in zoo.names() if name.endswith("-tiny")]
BIG = [name for name in zoo.names() if "tiny" not in name]


def run(model: onnx.ModelProto, feeds: dict) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


def declared_shape(value: onnx.ValueInfoProto, batch: int) -> tuple[int, ...]:
    dims = value.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else batch for d in dims)


def test_names_are_the_catalogue():
    assert zoo.names() == [
        "resnet50", "mobilenetv2", "bert-base", "gpt2", "vit-base", "llama-small",
        "ssd-mobilenet", "bert-large", "llama3.2-1b", "llama3.1-8b", "llama3.1-70b",
        "qwen2-7b", "resnet-tiny", "mobilenetv2-tiny", "bert-tiny", "gpt2-tiny", "llama-tiny",
        "llama-tiny-decode", "decoder-tiny", "vit-tiny",
    ]


@pytest.mark.parametrize("name", TINY)
def test_tiny_model_is_valid_and_runs(name):
    model = zoo.build(name)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert model.producer_name == "npuc.zoo"
    outputs = run(model, zoo.sample_inputs(model, batch=2))
    for value in model.graph.output:
        out = outputs[value.name]
        assert out.shape == declared_shape(value, batch=2)
        assert np.isfinite(out).all()
        assert 1e-3 < out.std() < 1e3


@pytest.mark.parametrize("name", TINY)
def test_build_is_deterministic(name):
    assert zoo.build(name).SerializeToString() == zoo.build(name).SerializeToString()


@pytest.mark.parametrize("name", TINY)
def test_parameter_count_matches_catalogue(name):
    assert zoo.parameter_count(zoo.build(name)) == ENTRIES[name].parameters


def test_batch_is_symbolic_by_default_and_fixed_on_request():
    dims = zoo.build("resnet-tiny").graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"
    model = zoo.build("bert-tiny", batch=3)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    onnx.checker.check_model(model, full_check=True)
    outputs = run(model, zoo.sample_inputs("bert-tiny", batch=3))
    assert outputs["pooler_output"].shape == (3, 64)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(NpucError, match="resnet50.*vit-tiny") as info:
        zoo.build("resnet51")
    assert "\n" not in str(info.value)
    with pytest.raises(NpucError):
        zoo.describe("nope")


def test_options_override_the_configuration():
    model = zoo.build("bert-tiny", layers=1, sequence=8)
    assert declared_shape(model.graph.output[0], batch=1) == (1, 8, 64)
    with pytest.raises(NpucError, match="no option colour"):
        zoo.build("bert-tiny", colour="red")


def test_describe_is_one_line():
    for name in zoo.names():
        line = zoo.describe(name)
        assert line.startswith(name + ": ") and "\n" not in line


def test_sample_inputs_are_valid():
    feeds = zoo.sample_inputs("bert-base", batch=2)
    assert feeds["input_ids"].dtype == np.int64 and feeds["input_ids"].shape == (2, 128)
    assert 0 <= feeds["input_ids"].min() and feeds["input_ids"].max() < 30522
    mask = feeds["attention_mask"]
    assert mask[:, :100].all() and not mask[:, -1].any()
    image = zoo.sample_inputs("vit-base")["pixel_values"]
    assert image.shape == (1, 3, 224, 224) and image.dtype == np.float32
    # Read from a model, the vocabulary comes from the embedding table.
    ids = zoo.sample_inputs(zoo.build("gpt2-tiny"), batch=4, seed=1)["input_ids"]
    assert ids.shape == (4, 16) and ids.max() < 1000


def ops(name: str) -> list[str]:
    """The model's op types in order, Constants left out."""
    return [n.op_type for n in zoo.build(name).graph.node if n.op_type != "Constant"]


def has_dynamic_reshape(model: onnx.ModelProto) -> bool:
    """True if some Reshape takes its shape from Shape -> Gather -> Unsqueeze -> Concat."""
    producer = {out: node for node in model.graph.node for out in node.output}

    def chain(name: str, op_types: list[str]) -> bool:
        node = producer.get(name)
        if node is None or node.op_type != op_types[0]:
            return False
        return len(op_types) == 1 or chain(node.input[0], op_types[1:])

    return any(node.op_type == "Reshape" and chain(node.input[1], ["Concat"])
               and any(chain(i, ["Unsqueeze", "Gather", "Shape"])
                       for i in producer[node.input[1]].input)
               for node in model.graph.node)


def test_cnns_keep_batchnorm_unfolded():
    model = zoo.build("resnet-tiny")
    names = {node.name for node in model.graph.node}
    assert "/layer1/layer1.0/conv1/Conv" in names
    assert "/layer1/layer1.0/downsample/downsample.0/Conv" in names
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert all(len(n.input) == 2 for n in convs)
    kinds = set(ops("resnet-tiny"))
    assert {"BatchNormalization", "MaxPool", "Add", "GlobalAveragePool", "Flatten",
            "Gemm"} <= kinds


def test_mobilenet_has_depthwise_convs_and_relu6_as_clip():
    model = zoo.build("mobilenetv2-tiny")
    depthwise = [n for n in model.graph.node if n.op_type == "Conv"
                 and onnx.helper.get_attribute_value(n.attribute[1]) > 1]
    assert depthwise
    clips = [n for n in model.graph.node if n.op_type == "Clip"]
    assert clips and all(len(n.input) == 3 for n in clips)
    assert "/features/features.0/features.0.2/Clip" in {n.name for n in clips}


def test_bert_has_erf_gelu_and_dynamic_reshapes():
    kinds = ops("bert-tiny")
    assert "LayerNormalization" in kinds and "Erf" in kinds and "Tanh" in kinds
    assert "Div Erf Add Mul Mul" in " ".join(kinds)
    assert has_dynamic_reshape(zoo.build("bert-tiny"))


def test_gpt2_has_causal_where_and_tanh_gelu():
    kinds = ops("gpt2-tiny")
    assert {"Where", "Split", "Softmax"} <= set(kinds)
    assert "Mul Pow Mul Add Mul Tanh Add Mul" in " ".join(kinds)
    model = zoo.build("gpt2-tiny")
    last = model.graph.node[-1]
    assert last.op_type == "MatMul" and last.output[0] == "logits"


def test_vit_embeds_patches_with_a_strided_conv():
    model = zoo.build("vit-tiny")
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert conv.name == "/vit/embeddings/patch_embeddings/projection/Conv"
    assert {"Expand", "Concat", "Erf"} <= {n.op_type for n in model.graph.node}
    assert has_dynamic_reshape(model)


def test_full_size_models_have_their_real_parameter_counts():
    known = {"resnet50": 25.6e6, "mobilenetv2": 3.5e6, "bert-base": 110e6,
             "gpt2": 124e6, "vit-base": 86e6, "llama-small": 43.8e6, "llama3.2-1b": 1.24e9,
             "llama3.1-8b": 8.03e9, "llama3.1-70b": 70.55e9, "qwen2-7b": 7.62e9,
             "ssd-mobilenet": 6.8e6}
    # bert-large is bert-base's family at other sizes; building its 335M random weights
    # takes half a minute, so benchmarks/bench_serving.py is where it is built
    for name in [n for n in BIG if n != "bert-large"]:
        model = zoo.build(name)
        count = zoo.parameter_count(model)
        assert count == ENTRIES[name].parameters
        assert abs(count - known[name]) / known[name] < 0.01
        if not zoo.has_external_weights(name):  # those are checked from their files
            onnx.checker.check_model(model, full_check=True)
        if name == "resnet50":
            out = run(model, zoo.sample_inputs(model))["output"]
            assert out.shape == (1, 1000) and np.isfinite(out).all()
            assert 1e-3 < out.std() < 1e3
        del model

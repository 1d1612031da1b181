"""Placement on Warboy: each limit of W1 sends a node to the CPU with its sentence."""

import numpy as np
import pytest

from npuc.ir.graph import Graph
from npuc.ir.types import tensor
from npuc.targets import get_target, place


@pytest.fixture(scope="module")
def warboy():
    return get_target("warboy-2pe")


def conv_graph(group=1, dilations=None, batch=1):
    g = Graph()
    x = g.add_input("x", tensor("i8", [batch, 256, 8, 8]))
    w = g.add_constant("w", np.zeros((256, 256 // group, 3, 3), np.int8))
    attrs = {"group": group, "pads": [1, 1, 1, 1]}
    if dilations:
        attrs["dilations"] = dilations
    g.create_node("Conv", [x, w], [("y", tensor("i8", [batch, 256, 8, 8]))], attrs=attrs,
                  name="conv")
    return g


def only(placements):
    (placement,) = placements.values()
    return placement


def test_conv_group_256_goes_to_the_cpu_with_the_sentence(warboy):
    p = only(place(conv_graph(group=256), warboy))
    assert p.device == "cpu"
    assert p.reason == "Conv group must be at most 128"
    assert p.detail == "group is 256"


def test_conv_group_128_stays_on_the_npu(warboy):
    assert only(place(conv_graph(group=128), warboy)).device == "npu"


def test_conv_without_group_takes_the_onnx_default(warboy):
    g = conv_graph()
    next(g.nodes).attrs.pop("group")
    assert only(place(g, warboy)).device == "npu"


def test_conv_dilation_above_12(warboy):
    p = only(place(conv_graph(dilations=[16, 16]), warboy))
    assert (p.device, p.reason, p.detail) == ("cpu", "Conv dilation must be at most 12",
                                              "dilations is [16, 16]")


def test_an_unsupported_operator_is_named(warboy):
    g = Graph()
    x = g.add_input("x", tensor("i8", [1, 8]))
    node = g.create_node("Erf", [x], [("y", tensor("i8", [1, 8]))])
    p = place(g, warboy)[node]
    assert p.reason == "operator Erf is not supported by warboy-2pe"
    assert p.explain(node) == ("Erf node 'y' runs on the CPU: operator Erf is not supported "
                               "by warboy-2pe")


def concat(axis, rank=4):
    g = Graph()
    shape = [1, 4, 8, 8][:rank]
    a = g.add_input("a", tensor("i8", shape))
    b = g.add_input("b", tensor("i8", shape))
    g.create_node("Concat", [a, b], [("y", tensor("i8", None))], attrs={"axis": axis})
    return g


def test_concat_along_height_only(warboy):
    assert only(place(concat(2), warboy)).device == "npu"
    assert only(place(concat(-2), warboy)).device == "npu"  # -2 of rank 4 is the height
    p = only(place(concat(1), warboy))
    assert (p.device, p.reason, p.detail) == (
        "cpu", "Concat runs on the NPU only along the height axis (axis 2 of NCHW)", "axis 1")


def test_slice_axes_come_from_its_constant_input(warboy):
    def slice_graph(axes):
        g = Graph()
        x = g.add_input("x", tensor("i8", [1, 4, 8, 8]))
        consts = [g.add_constant(n, np.array(v, np.int64))
                  for n, v in (("starts", [0]), ("ends", [4]), ("axes", axes))]
        g.create_node("Slice", [x, *consts], [("y", tensor("i8", None))])
        return g

    assert only(place(slice_graph([2]), warboy)).device == "npu"
    assert only(place(slice_graph([3]), warboy)).detail == "axis 3"


def test_softmax_batch_at_most_two(warboy):
    def softmax(batch):
        g = Graph()
        x = g.add_input("x", tensor("i8", [batch, 10]))
        g.create_node("Softmax", [x], [("y", tensor("i8", [batch, 10]))])
        return g

    assert only(place(softmax(2), warboy)).device == "npu"
    p = only(place(softmax(4), warboy))
    assert (p.reason, p.detail) == ("Softmax batch must be at most 2", "the batch is 4")
    assert only(place(softmax("N"), warboy)).detail == "the batch size is not known"


def test_batchnorm_only_after_conv(warboy):
    g = conv_graph()
    y = next(g.nodes).outputs[0]
    params = [g.add_constant(n, np.ones(256, np.float32)) for n in "sbmv"]
    bn = g.create_node("BatchNormalization", [y, *params], [("z", tensor("i8", None))])
    x = g.inputs[0]
    lone = g.create_node("BatchNormalization", [x, *params], [("u", tensor("i8", None))])
    placed = place(g, warboy)
    assert placed[bn].device == "npu"
    assert placed[lone].reason == "BatchNormalization runs on the NPU only right after a Conv"


def test_space_to_depth_crd_only(warboy):
    g = Graph()
    x = g.add_input("x", tensor("i8", [1, 4, 8, 8]))
    dcr = g.create_node("SpaceToDepth", [x], [("a", tensor("i8", None))],
                        attrs={"blocksize": 2})
    crd = g.create_node("SpaceToDepth", [x], [("b", tensor("i8", None))],
                        attrs={"blocksize": 2, "mode": "CRD"})
    placed = place(g, warboy)
    assert placed[dcr].reason == "SpaceToDepth runs on the NPU only in CRD mode"
    assert placed[crd].device == "npu"


def test_fused_conv_uses_conv_limits_and_the_fusion_table(warboy):
    g = Graph()
    x = g.add_input("x", tensor("i8", [1, 256, 8, 8]))
    w = g.add_constant("w", np.zeros((256, 1, 3, 3), np.int8))
    relu = g.create_node("FusedConv", [x, w], [("a", tensor("i8", None))], domain="npuc",
                         attrs={"group": 1, "activation": "Relu"})
    gelu = g.create_node("FusedConv", [x, w], [("b", tensor("i8", None))], domain="npuc",
                         attrs={"group": 1, "activation": "npuc::Gelu"})
    wide = g.create_node("FusedConv", [x, w], [("c", tensor("i8", None))], domain="npuc",
                         attrs={"group": 256, "activation": "Relu"})
    placed = place(g, warboy)
    assert placed[relu].device == "npu"
    assert placed[gelu].reason == "warboy-2pe does not fuse npuc::Gelu after Conv"
    assert placed[wide].reason == "Conv group must be at most 128"


def test_npuc_ops_are_named_with_their_domain():
    g = Graph()
    x = g.add_input("x", tensor("bf16", [1, 8, 64]))
    gelu = g.create_node("Gelu", [x], [("y", tensor("bf16", [1, 8, 64]))], domain="npuc")
    assert place(g, "rngd")[gelu].device == "npu"
    assert place(g, "warboy")[gelu].reason == "operator npuc::Gelu is not supported by warboy"


def test_everything_runs_on_the_cpu_target():
    p = only(place(conv_graph(group=256), "cpu"))
    assert p.device == "cpu" and p.reason == "the target cpu is the host CPU"

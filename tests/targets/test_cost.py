"""The cost model against hand-computed examples on the tiny chip of conftest.py.

The tiny chip: 2 units of a 4 x 4 MAC array (32 MACs per cycle at its int8 peak of
64e9 ops/s and 1 GHz), 8 vector elements per cycle, DRAM at 1 byte per cycle, no DMA
alignment (1 byte).
"""

import numpy as np
import pytest

from npuc.ir.graph import Graph
from npuc.ir.types import tensor
from npuc.targets import Tile, estimate_group, estimate_node
from npuc.targets.work import gemm_views, vector_elements


def gemm(m, n, k, dtype="i8"):
    g = Graph()
    a = g.add_input("a", tensor(dtype, [m, k]))
    b = g.add_constant("b", np.zeros((k, n), np.int8))
    return g, g.create_node("Gemm", [a, b], [("y", tensor(dtype, [m, n]))])


def test_gemm_that_fills_the_array(tiny):
    _, node = gemm(8, 8, 16)
    e = estimate_node(node, tiny)
    assert e.macs == 8 * 8 * 16 == 1024
    # m=8 over 2 units, n=8 over 4 rows, k=16 over 4 cols: no waste
    assert e.utilisation == 1.0
    assert e.compute_cycles == 1024 / 32 == 32
    # bytes: a 8*16 + b 16*8 + y 8*8 (int8) = 320, at 1 byte per cycle
    assert (e.input_bytes, e.weight_bytes, e.output_bytes) == (128, 128, 64)
    assert e.dma_cycles == 320
    # one tile cannot overlap load and compute
    assert e.tiles == 1 and e.cycles == e.serial_cycles == 352
    # roofline: 2048 ops / 64e9 = 32 ns vs 320 B / 1e9 B/s = 320 ns: memory bound
    assert e.roofline.compute_s == pytest.approx(32e-9)
    assert e.roofline.memory_s == pytest.approx(320e-9)
    assert e.roofline.bound == "memory"
    assert e.roofline.intensity == pytest.approx(2048 / 320)


def test_gemm_that_wastes_the_array(tiny):
    _, node = gemm(3, 5, 6)
    e = estimate_node(node, tiny)
    # units sharing rows: ceil(3/2)*2=4 x ceil(5/4)*4=8 = 32; sharing columns:
    # 3 x ceil(5/8)*8 = 24, the better; x ceil(6/4)*4=8 deep = 192 slots for 90 MACs
    assert e.macs == 90
    assert e.utilisation == pytest.approx(90 / 192)
    assert e.compute_cycles == 192 / 32 == 6


def test_one_row_products_share_the_columns_out(tiny):
    _, node = gemm(1, 16, 8)
    e = estimate_node(node, tiny)
    # a decode step's one row: 1 x 16 columns over 2 units of 4 rows x 8 deep, no waste
    assert e.utilisation == 1.0 and e.compute_cycles == 128 / 32


def test_batched_matmul_with_a_shared_weight_is_one_gemm(tiny):
    g = Graph()
    a = g.add_input("a", tensor("i8", [8, 1, 16]))
    b = g.add_constant("b", np.zeros((16, 64), np.int8))
    node = g.create_node("MatMul", [a, b], [("y", tensor("i8", [8, 1, 64]))])
    (view,) = gemm_views(node)
    assert (view.groups, view.m, view.n, view.k) == (1, 8, 64, 16)
    one = Graph()
    a1 = one.add_input("a", tensor("i8", [1, 1, 16]))
    b1 = one.add_constant("b", np.zeros((16, 64), np.int8))
    single = one.create_node("MatMul", [a1, b1], [("y", tensor("i8", [1, 1, 64]))])
    # batch 8 reads the weights once, as batch 1 does: far less than 8 times the time
    assert estimate_node(node, tiny).cycles < 2 * estimate_node(single, tiny).cycles


def test_tiles_along_m_reread_the_weights(tiny):
    _, node = gemm(8, 8, 16)
    e = estimate_node(node, tiny, Tile(m=4, n=8, k=16))
    # 2 tiles of 4*8*16: 4 x 8 x 16 = 512 slots each = 16 cycles
    assert e.tiles == 2 and e.compute_cycles == 32
    # each tile: half the input (64), all the weights (128), half the output (32) = 224 B
    assert e.dma_bytes == 448 and e.dma_cycles == 448
    # DMA bounds: max(32, 448) + the last tile's compute (16); serial 32 + 448
    assert e.bound == "dma"
    assert e.cycles == 448 + 16 and e.serial_cycles == 480


def test_double_buffering_hides_dma_when_compute_bounds(tiny):
    fast = type(tiny)(**{**tiny.__dict__,
                         "memory": type(tiny.memory)(65536, 2, 2**20, 16e9, 1)})
    _, node = gemm(64, 8, 16)
    e = estimate_node(node, fast, Tile(m=16, n=8, k=16))
    # 4 tiles: 16*8*16 slots / 32 = 64 compute cycles each
    # each loads 16*16 input + 16*8 weights + 16*8 output = 512 B at 16 B/cycle = 32 cycles
    assert e.tiles == 4 and e.compute_cycles == 256 and e.dma_cycles == 128
    # compute bounds: 256 + the first tile's load (32); serial 256 + 128
    assert e.cycles == 288 and e.serial_cycles == 384


def test_elementwise_is_vector_work(tiny):
    g = Graph()
    x = g.add_input("x", tensor("i8", [1, 4, 8, 8]))
    node = g.create_node("Relu", [x], [("y", tensor("i8", [1, 4, 8, 8]))])
    e = estimate_node(node, tiny)
    # 256 elements at 8 per cycle; 256 B in and 256 B out at 1 B per cycle
    assert e.macs == 0 and e.vector_elements == 256
    assert e.compute_cycles == 32 and e.dma_cycles == 512
    assert e.roofline.compute_s == pytest.approx(32e-9)


def test_a_fused_group_keeps_its_intermediate_on_chip(tiny):
    g, node = gemm(8, 8, 16)
    relu = g.create_node("Relu", [node.outputs[0]], [("z", tensor("i8", [8, 8]))])
    e = estimate_group([node, relu], tiny)
    # y (64 B) never leaves the chip: 128 + 128 in, 64 out
    assert (e.input_bytes, e.weight_bytes, e.output_bytes) == (128, 128, 64)
    # the Relu's 64 elements (8 cycles) run behind the 32 MAC cycles
    assert e.compute_cycles == 32


def test_a_precision_the_chip_lacks_is_estimated_at_its_preferred(tiny):
    _, node = gemm(8, 8, 16, dtype="f32")
    e = estimate_node(node, tiny)
    assert e.precision == "int8" and "f32 is not a precision of tiny" in e.notes[0]


def node_of(op, shapes, out, attrs=None, domain=""):
    g = Graph()
    ins = [g.add_input(f"i{i}", tensor("i8", s)) for i, s in enumerate(shapes)]
    return g.create_node(op, ins, [("y", tensor("i8", out))], attrs=attrs or {},
                         domain=domain)


def macs(node):
    return sum(v.macs for v in gemm_views(node))


def test_conv_macs():
    # N*Cout*Ho*Wo * Cin*kh*kw = 1*8*4*4 * 4*3*3
    assert macs(node_of("Conv", [[1, 4, 6, 6], [8, 4, 3, 3]], [1, 8, 4, 4])) == 4608
    # depthwise, group 4: each of 4 channels 4*4 outputs x 3*3
    assert macs(node_of("Conv", [[1, 4, 6, 6], [4, 1, 3, 3]], [1, 4, 4, 4],
                        {"group": 4})) == 4 * 16 * 9


def test_conv_transpose_macs():
    # every input pixel (1*4*3*3) scatters into Cout/g*kh*kw = 2*2*2 outputs
    assert macs(node_of("ConvTranspose", [[1, 4, 3, 3], [4, 2, 2, 2]], [1, 2, 6, 6],
                        {"strides": [2, 2]})) == 36 * 8


def test_matmul_and_gemm_macs():
    # 2*3 batches of 4x5 @ 5x6
    assert macs(node_of("MatMul", [[2, 3, 4, 5], [2, 3, 5, 6]], [2, 3, 4, 6])) == 6 * 4 * 6 * 5
    # transA: A is [K, M] = [7, 3]
    assert macs(node_of("Gemm", [[7, 3], [7, 2]], [3, 2], {"transA": 1})) == 3 * 2 * 7


def test_attention_macs_and_softmax():
    # npuc::Attention reads the key transposed: [1, 2, 16, 10]
    node = node_of("Attention", [[1, 2, 8, 16], [1, 2, 16, 10], [1, 2, 10, 32]],
                   [1, 2, 8, 32], domain="npuc")
    # Q K^T: 2 heads * 8*10*16 = 2560; P V: 2 * 8*32*10 = 5120
    assert macs(node) == 2560 + 5120
    assert vector_elements(node) == 2 * 8 * 10
    # rank 3 with num_heads: [B, S, heads*D]
    node3 = node_of("Attention", [[1, 8, 32], [1, 10, 32], [1, 10, 64]], [1, 8, 64],
                    {"num_heads": 2}, domain="npuc")
    assert macs(node3) == 2560 + 5120


def test_fused_conv_adds_its_epilogue_pass():
    node = node_of("FusedConv", [[1, 4, 6, 6], [8, 4, 3, 3]], [1, 8, 4, 4],
                   {"activation": "Relu"}, domain="npuc")
    assert macs(node) == 4608 and vector_elements(node) == 8 * 4 * 4


def test_unknown_shapes_are_reported():
    from npuc.ir.errors import NpucError

    node = node_of("MatMul", [["N", 4], [4, 4]], ["N", 4])
    with pytest.raises(NpucError, match="the shape of %i0 is not known"):
        gemm_views(node)


@pytest.mark.parametrize("m,n,k", [(0, 8, 16), (8, 0, 16), (8, 8, 0)])
def test_an_empty_product_costs_no_compute(tiny, m, n, k):
    _, node = gemm(m, n, k)
    e = estimate_node(node, tiny)
    assert e.macs == 0 and e.seconds >= 0 and e.compute_cycles >= 0


@pytest.mark.parametrize("batch", [2, 8, 64])
def test_attention_compute_grows_with_the_batch_not_its_square(tiny, batch):
    # a decode step's attention: each sequence and head is its own pair of products, and
    # its softmax is its own; B sequences are B times the work of one
    def attention(b):
        return node_of("Attention", [[b, 8, 1, 16], [b, 8, 16, 64], [b, 8, 64, 16]],
                       [b, 8, 1, 16], domain="npuc")

    one, many = estimate_node(attention(1), tiny), estimate_node(attention(batch), tiny)
    assert many.compute_cycles == pytest.approx(batch * one.compute_cycles)
    assert many.vector_elements == batch * one.vector_elements

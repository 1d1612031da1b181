"""Time npuc's neural-network kernels against onnxruntime on ResNet-50 and BERT shapes.

Prints, per case, the median time of each and the ratio npuc / onnxruntime (both measured
in this run, onnxruntime limited to the same 2 threads)::

    python benchmarks/bench_kernels_nn.py
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from npuc.compiler.executor.kernels import KERNELS, KernelContext, load_all

F = onnx.TensorProto.FLOAT


def _median_time(fn, repeat=20):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _ort_session(op, inputs, attrs, n_out=1, out_type=F):
    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(op, names, [f"o{k}" for k in range(n_out)], **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in zip(names, inputs)],
        [helper.make_tensor_value_info(f"o{k}", out_type, None) for k in range(n_out)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = dict(zip(names, inputs))
    return lambda: sess.run(None, feed)


CASES = [
    # (label, op, input shapes, attrs)
    ("conv 3x3 64->64 @56", "Conv", [(1, 64, 56, 56), (64, 64, 3, 3), (64,)], {"pads": [1, 1, 1, 1]}),
    ("conv 1x1 64->256 @56", "Conv", [(1, 64, 56, 56), (256, 64, 1, 1), (256,)], {}),
    ("conv 7x7/2 3->64 @224", "Conv", [(1, 3, 224, 224), (64, 3, 7, 7), (64,)],
     {"pads": [3, 3, 3, 3], "strides": [2, 2]}),
    ("conv 3x3/2 128 @56", "Conv", [(1, 128, 56, 56), (128, 128, 3, 3), (128,)],
     {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ("conv 3x3 512 @7", "Conv", [(1, 512, 7, 7), (512, 512, 3, 3), (512,)], {"pads": [1, 1, 1, 1]}),
    ("depthwise 3x3 144 @56", "Conv", [(1, 144, 56, 56), (144, 1, 3, 3), (144,)],
     {"pads": [1, 1, 1, 1], "group": 144}),
    ("maxpool 3x3/2 64 @112", "MaxPool", [(1, 64, 112, 112)],
     {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    ("avgpool 2x2/2 256 @56", "AveragePool", [(1, 256, 56, 56)], {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("matmul 128x768x3072", "MatMul", [(1, 128, 768), (768, 3072)], {}),
    ("gemm 1x2048x1000", "Gemm", [(1, 2048), (2048, 1000), (1000,)], {}),
    ("layernorm 128x768", "LayerNormalization", [(1, 128, 768), (768,), (768,)], {"axis": -1}),
    ("softmax 12x128x128", "Softmax", [(1, 12, 128, 128)], {"axis": -1}),
]


def resnet50_convs():
    """(in_ch, out_ch, kernel, stride, spatial) of every convolution in ResNet-50 v1."""
    layers = [(3, 64, 7, 2, 224)]
    cin = 64
    for width, blocks, size, stride in ((64, 3, 56, 1), (128, 4, 56, 2), (256, 6, 28, 2), (512, 3, 14, 2)):
        for b in range(blocks):
            s = stride if b == 0 else 1
            inner = size if b == 0 else size // stride
            layers += [(cin, width, 1, 1, inner), (width, width, 3, s, inner),
                       (width, width * 4, 1, 1, inner // s)]
            if b == 0:
                layers.append((cin, width * 4, 1, s, inner))
            cin = width * 4
    return layers


def bench_conv_integer(rng) -> None:
    """An exact uint8 convolution (ConvInteger) on a ResNet-50 shape."""
    inputs = [rng.integers(0, 256, (1, 64, 56, 56)).astype(np.uint8),
              rng.integers(0, 256, (64, 64, 3, 3)).astype(np.uint8), np.array(128, np.uint8)]
    attrs = {"pads": [1, 1, 1, 1]}
    fn = KERNELS[("", "ConvInteger")]
    ctx = KernelContext(opset=21)
    ours = _median_time(lambda: fn(inputs, attrs, ctx), 10)
    theirs = _median_time(_ort_session("ConvInteger", inputs, attrs, out_type=onnx.TensorProto.INT32), 10)
    print(f"{'convinteger 3x3 64 @56':28s} {ours * 1e3:9.3f} {theirs * 1e3:9.3f} {ours / theirs:7.2f}")


def bench_resnet50_convs(rng) -> None:
    """All 53 convolutions of ResNet-50 at batch 1, summed."""
    ours = theirs = 0.0
    fn = KERNELS[("", "Conv")]
    ctx = KernelContext(opset=21)
    for cin, cout, k, s, size in resnet50_convs():
        inputs = [rng.standard_normal((1, cin, size, size)).astype(np.float32),
                  rng.standard_normal((cout, cin, k, k)).astype(np.float32),
                  rng.standard_normal((cout,)).astype(np.float32)]
        attrs = {"pads": [k // 2] * 4, "strides": [s, s]}
        ours += _median_time(lambda inputs=inputs, attrs=attrs: fn(inputs, attrs, ctx), 5)
        theirs += _median_time(_ort_session("Conv", inputs, attrs), 5)
    print(f"{'resnet50 convs (53)':28s} {ours * 1e3:9.3f} {theirs * 1e3:9.3f} {ours / theirs:7.2f}")


def main() -> None:
    load_all()
    rng = np.random.default_rng(0)
    print(f"{'case':28s} {'npuc ms':>9s} {'ort ms':>9s} {'ratio':>7s}")
    for label, op, shapes, attrs in CASES:
        inputs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        fn = KERNELS.get(("", op))
        if fn is None:
            print(f"{label:28s} (no kernel)")
            continue
        ctx = KernelContext(opset=21, num_outputs=1)
        ours = _median_time(lambda fn=fn, inputs=inputs, attrs=attrs, ctx=ctx: fn(inputs, attrs, ctx))
        theirs = _median_time(_ort_session(op, inputs, attrs))
        print(f"{label:28s} {ours * 1e3:9.3f} {theirs * 1e3:9.3f} {ours / theirs:7.2f}")
    bench_conv_integer(rng)
    bench_resnet50_convs(rng)


if __name__ == "__main__":
    main()

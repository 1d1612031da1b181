"""Time npuc's CNN kernels (pools, depthwise and im2col convolutions, activations, the
classifier tail) against onnxruntime on one-node models of the same op and shape.

Both run on one thread (onnxruntime's intra-op pool of 1, ``NPUC_BLAS_THREADS=1``), the
runs interleaved (npuc, onnxruntime, npuc, ...) so that the machine's load hits both
alike. Prints per case the best and median time of each and the ratio of the medians
and of the bests (npuc / onnxruntime; goal: at or under 1)::

    python benchmarks/bench_kernels_cnn.py [--repeat N] [--only WORD ...] [--products float32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
os.environ["NPUC_BLAS_THREADS"] = "1"

import numpy as np  # noqa: E402

F = 1  # onnx.TensorProto.FLOAT


def _pool(kind, c, size, k, s, pads=0, **extra):
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [pads] * 4, **extra}
    return (kind, [(1, c, size, size)], attrs)


def _dw(c, size, k, s, dil=1):
    pad = dil * (k // 2)
    return ("Conv", [(1, c, size, size), (c, 1, k, k), (c,)],
            {"group": c, "strides": [s, s], "pads": [pad] * 4, "dilations": [dil, dil]})


def _conv(cin, cout, size, k, s):
    return ("Conv", [(1, cin, size, size), (cout, cin, k, k), (cout,)],
            {"strides": [s, s], "pads": [k // 2] * 4})


CASES = {
    # ResNet-50's stem pool and common others
    "maxpool 3x3/2 p1 64@112": _pool("MaxPool", 64, 112, 3, 2, 1),
    "maxpool 2x2/2 64@112": _pool("MaxPool", 64, 112, 2, 2),
    "maxpool 3x3/2 ceil 96@55": _pool("MaxPool", 96, 55, 3, 2, 0, ceil_mode=1),
    "maxpool 3x3/1 p1 192@28": _pool("MaxPool", 192, 28, 3, 1, 1),
    "maxpool 3x3/2 p1 +indices": _pool("MaxPool", 64, 112, 3, 2, 1) + (2,),
    "maxpool 2x2/2 dil2 64@56": _pool("MaxPool", 64, 56, 2, 2, 0, dilations=[2, 2]),
    "avgpool 2x2/2 256@56": _pool("AveragePool", 256, 56, 2, 2),
    "avgpool 3x3/1 p1 incl 192@28": _pool("AveragePool", 192, 28, 3, 1, 1, count_include_pad=1),
    "avgpool 3x3/1 p1 excl 192@28": _pool("AveragePool", 192, 28, 3, 1, 1),
    "avgpool 3x3/2 ceil 256@28": _pool("AveragePool", 256, 28, 3, 2, 0, ceil_mode=1),
    "globalavg 2048@7": ("GlobalAveragePool", [(1, 2048, 7, 7)], {}),
    "globalavg 1280@7 b2": ("GlobalAveragePool", [(2, 1280, 7, 7)], {}),
    "globalavg 256@56": ("GlobalAveragePool", [(1, 256, 56, 56)], {}),
    "globalmax 2048@7": ("GlobalMaxPool", [(1, 2048, 7, 7)], {}),
    # MobileNetV2's depthwise convolutions, EfficientNet's 5x5, a dilated one
    "dw 3x3/1 32@112": _dw(32, 112, 3, 1),
    "dw 3x3/2 96@112": _dw(96, 112, 3, 2),
    "dw 3x3/1 144@56": _dw(144, 56, 3, 1),
    "dw 3x3/1 384@14": _dw(384, 14, 3, 1),
    "dw 3x3/1 960@7": _dw(960, 7, 3, 1),
    "dw 5x5/1 240@28": _dw(240, 28, 5, 1),
    "dw 5x5/2 144@56": _dw(144, 56, 5, 2),
    "dw 7x7/1 192@28": _dw(192, 28, 7, 1),
    "dw 3x3/1 dil2 144@56": _dw(144, 56, 3, 1, 2),
    # im2col convolutions (the product itself is in the time too)
    "conv 7x7/2 3->64 @224": _conv(3, 64, 224, 7, 2),
    "conv 3x3/2 3->32 @224": _conv(3, 32, 224, 3, 2),
    "conv 3x3 64->64 @56": _conv(64, 64, 56, 3, 1),
    "conv 1x1/2 256->512 @56": _conv(256, 512, 56, 1, 2),
    "conv 3x3 256->256 @14": _conv(256, 256, 14, 3, 1),
    "conv 3x3 512->512 @7": _conv(512, 512, 7, 3, 1),
    "conv 1x1 256->1024 @14": _conv(256, 1024, 14, 1, 1),
    "conv 1x1 1024->256 @14": _conv(1024, 256, 14, 1, 1),
    # MobileNetV2's pointwise convolutions, few input or output channels
    "conv 1x1 16->96 @112": _conv(16, 96, 112, 1, 1),
    "conv 1x1 24->144 @56": _conv(24, 144, 56, 1, 1),
    "conv 1x1 144->24 @56": _conv(144, 24, 56, 1, 1),
    "conv 1x1 96->576 @14": _conv(96, 576, 14, 1, 1),
    "conv 1x1 960->320 @7": _conv(960, 320, 7, 1, 1),
    # elementwise between the convolutions, and the tail
    "relu 256@56": ("Relu", [(1, 256, 56, 56)], {}),
    "clip6 144@56": ("Clip", [(1, 144, 56, 56), (), ()], {}),
    "add 256@56": ("Add", [(1, 256, 56, 56), (1, 256, 56, 56)], {}),
    "batchnorm 64@112": ("BatchNormalization", [(1, 64, 112, 112), (64,), (64,), (64,), (64,)], {}),
    "flatten 2048": ("Flatten", [(1, 2048, 1, 1)], {}),
    "gemm 2x2048->1000": ("Gemm", [(2, 2048), (1000, 2048), (1000,)], {"transB": 1}),
}


def _inputs(op, shapes, rng):
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    if op == "Clip":
        xs[1], xs[2] = np.array(0, np.float32), np.array(6, np.float32)
    if op == "BatchNormalization":
        xs[4] = np.abs(xs[4]) + 0.5
    return xs


def _ort(op, inputs, attrs, n_out):
    import onnx
    import onnxruntime as ort
    from onnx import helper

    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(op, names, [f"o{k}" for k in range(n_out)], **attrs)
    outs = [helper.make_tensor_value_info("o0", F, None)]
    if n_out > 1:
        outs.append(helper.make_tensor_value_info("o1", onnx.TensorProto.INT64, None))
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, F, a.shape) for n, a in zip(names, inputs)],
        outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    feed = dict(zip(names, inputs))
    return lambda: sess.run(None, feed)


def _npuc(op, inputs, attrs, n_out):
    from npuc.compiler.executor.kernels import KERNELS, KernelContext, load_all

    load_all()
    fn = KERNELS[("", op)]
    ctx = KernelContext(opset=21, num_outputs=n_out)

    return lambda: fn(inputs, attrs, ctx)


def main(run=None, doc: str = __doc__, repeat: int = 30) -> int:
    """Parse ``--repeat`` and ``--only`` and call ``run(args)`` (this script's cases by
    default) with BLAS on one thread."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=repeat)
    p.add_argument("--only", nargs="*", default=[], help="cases whose label holds a word")
    if run is None:  # (a caller's cases choose their own products)
        p.add_argument("--products", choices=["float64", "float32"], default="float64",
                       help="npuc's float products: the IR's float64 definition (default) "
                            "or float32, what `npuc run` uses")
    args = p.parse_args()
    from npuc.compiler.executor import threads

    # BLAS on one thread for the whole run, as in one execute
    with threads.blas_limit(), threads.product_precision(getattr(args, "products", "float64")):
        (run or _run)(args)
    return 0


def _run(args) -> None:
    rng = np.random.default_rng(0)
    print(f"one thread each, npuc's products {args.products}, "
          f"load average {os.getloadavg()[0]:.2f} at start; "
          f"milliseconds, best / median of {args.repeat} interleaved runs")
    print(f"{'case':30s} {'npuc':>15s} {'onnxruntime':>15s} {'ratio med':>9s} {'best':>6s}")
    for label, case in CASES.items():
        if args.only and not any(w in label for w in args.only):
            continue
        op, shapes, attrs = case[:3]
        n_out = case[3] if len(case) > 3 else 1
        inputs = _inputs(op, shapes, rng)
        fns = [_npuc(op, inputs, attrs, n_out), _ort(op, inputs, attrs, n_out)]
        for fn in fns:
            fn()
        times = [[], []]
        for _ in range(args.repeat):
            for i, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - t0)
        (bn, bo), (mn, mo) = ([min(t) for t in times], [statistics.median(t) for t in times])
        print(f"{label:30s} {bn * 1e3:7.3f} /{mn * 1e3:7.3f} {bo * 1e3:7.3f} /{mo * 1e3:7.3f} "
              f"{mn / mo:8.2f}x {bn / bo:5.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    sys.exit(main())

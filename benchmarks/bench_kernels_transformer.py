"""Time npuc's transformer kernels (products in both precisions, Softmax, LayerNorm,
GELU, the elementwise and layout operators of BERT, GPT-2 and ViT) against onnxruntime
on one-node models of the same op and shape (batch 2, sequence 128 or ViT's 197).

Both run on one thread (onnxruntime's intra-op pool of 1, ``NPUC_BLAS_THREADS=1``), the
runs interleaved (npuc, onnxruntime, npuc, ...); the times are process CPU time, which a
busy neighbour disturbs less than wall time. Prints per case the best and median of each
and the ratio of the medians and of the bests (npuc / onnxruntime; goal: at or under 1).
Products and the kernels that have a float32-products path of their own (Softmax, GELU,
Tanh, Erf, Sigmoid) run in both precisions, the others in the default::

    python benchmarks/bench_kernels_transformer.py [--repeat N] [--only WORD ...]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
os.environ["NPUC_BLAS_THREADS"] = "1"

import numpy as np  # noqa: E402
from bench_kernels_cnn import _ort  # noqa: E402
from bench_kernels_cnn import main as kernels_main  # noqa: E402

S, V = (2, 128), (2, 197)
CASES = {
    "matmul 256x768x768": ("MatMul", [(*S, 768), (768, 768)], {}),
    "matmul 256x768x3072": ("MatMul", [(*S, 768), (768, 3072)], {}),
    "matmul 256x3072x768": ("MatMul", [(*S, 3072), (3072, 768)], {}),
    "matmul 394x768x768": ("MatMul", [(*V, 768), (768, 768)], {}),
    "matmul q.kT 2x12x128x64": ("MatMul", [(2, 12, 128, 64), (2, 12, 64, 128)], {}),
    "gemm 256x768x2304 +bias": ("Gemm", [(256, 768), (768, 2304), (2304,)], {}),
    "softmax 2x12x128x128": ("Softmax", [(2, 12, 128, 128)], {"axis": -1}),
    "softmax 2x12x197x197": ("Softmax", [(2, 12, 197, 197)], {"axis": -1}),
    "layernorm 2x128x768": ("LayerNormalization", [(*S, 768), (768,), (768,)], {"axis": -1}),
    "layernorm 2x197x768": ("LayerNormalization", [(*V, 768), (768,), (768,)], {"axis": -1}),
    "gelu 2x197x3072": ("Gelu", [(*V, 3072)], {}),
    "gelu tanh 2x128x3072": ("Gelu", [(*S, 3072)], {"approximate": "tanh"}),
    "erf 2x128x3072": ("Erf", [(*S, 3072)], {}),
    "tanh 2x128x3072": ("Tanh", [(*S, 3072)], {}),
    "pow 3 2x128x3072": ("Pow", [(*S, 3072), ()], {}),
    "add bias 2x128x768": ("Add", [(*S, 768), (768,)], {}),
    "add mask 2x12x128x128": ("Add", [(2, 12, 128, 128), (2, 1, 1, 128)], {}),
    "mul 2x128x3072": ("Mul", [(*S, 3072), (*S, 3072)], {}),
    "div scalar 2x12x128x128": ("Div", [(2, 12, 128, 128), ()], {}),
    "transpose heads 2x128x12x64": ("Transpose", [(2, 128, 12, 64)], {"perm": [0, 2, 1, 3]}),
}
PRODUCTS = ("MatMul", "Gemm")
# kernels with their own float32-products path (vectorised float32 exp, tanh and erf)
FLOAT32_PATHS = PRODUCTS + ("Softmax", "Gelu", "Tanh", "Erf", "Sigmoid")


def _inputs(op, shapes, rng):
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    if op == "Pow":
        xs[1] = np.array(3, np.float32)
    if op == "Div":
        xs[1] = np.array(8, np.float32)
    return xs


def _npuc(op, inputs, attrs, products):
    from npuc.compiler.executor import threads
    from npuc.compiler.executor.kernels import KERNELS, KernelContext, load_all

    load_all()
    fn = KERNELS[("", op)]
    ctx = KernelContext(opset=21)

    def run():
        with threads.product_precision(products):
            return fn(inputs, attrs, ctx)

    return run


def main() -> int:
    return kernels_main(_run, __doc__, repeat=20)


def _run(args) -> None:
    rng = np.random.default_rng(0)
    print(f"one thread each, load average {os.getloadavg()[0]:.2f} at start; CPU "
          f"milliseconds, best / median of {args.repeat} interleaved runs")
    print(f"{'case':36s} {'npuc':>15s} {'onnxruntime':>15s} {'ratio med':>9s} {'best':>6s}")
    for label, (op, shapes, attrs) in CASES.items():
        if args.only and not any(w in label for w in args.only):
            continue
        inputs = _inputs(op, shapes, rng)
        both = op in FLOAT32_PATHS
        modes = ("float32", "float64") if both else ("float64",)
        fns = [_npuc(op, inputs, attrs, m) for m in modes] + [_ort(op, inputs, attrs, 1)]
        for fn in fns:
            fn()
        times = [[] for _ in fns]
        for _ in range(args.repeat):
            for i, fn in enumerate(fns):
                t0 = time.process_time()
                fn()
                times[i].append(time.process_time() - t0)
        bo, mo = min(times[-1]), statistics.median(times[-1])
        for k, mode in enumerate(modes):
            bn, mn = min(times[k]), statistics.median(times[k])
            name = f"{label} ({mode})" if both else label
            print(f"{name:36s} {bn * 1e3:7.3f} /{mn * 1e3:7.3f} {bo * 1e3:7.3f} /{mo * 1e3:7.3f} "
                  f"{mn / mo:8.2f}x {bn / bo:5.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    sys.exit(main())

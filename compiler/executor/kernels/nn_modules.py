"""Modules that define the neural-network kernels (convolution, pooling, normalisation,
resizing, quantisation, recurrent, signal and vision operators, optimizer steps and
the ai.onnx.ml operators)."""

MODULES = [
    "npuc.compiler.executor.kernels.conv",
    "npuc.compiler.executor.kernels.pool",
    "npuc.compiler.executor.kernels.matmul",
    "npuc.compiler.executor.kernels.norm",
    "npuc.compiler.executor.kernels.resize",
    "npuc.compiler.executor.kernels.quant",
    "npuc.compiler.executor.kernels.misc_nn",
    "npuc.compiler.executor.kernels.vision",
    "npuc.compiler.executor.kernels.rnn",
    "npuc.compiler.executor.kernels.signal",
    "npuc.compiler.executor.kernels.training",
    "npuc.compiler.executor.kernels.ml",
]

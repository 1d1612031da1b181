"""The modules defining the elementwise, shape, indexing, reduction and misc kernels."""

MODULES = [
    "npuc.compiler.executor.kernels.elementwise",
    "npuc.compiler.executor.kernels.binary",
    "npuc.compiler.executor.kernels.shape_ops",
    "npuc.compiler.executor.kernels.indexing",
    "npuc.compiler.executor.kernels.reduce",
    "npuc.compiler.executor.kernels.sequence",
    "npuc.compiler.executor.kernels.text",
    "npuc.compiler.executor.kernels.misc",
]

"""The quantizer's layers: the compute-heavy operators with a weight (Conv, Gemm, MatMul),
which calibration keeps per-channel statistics for, the accuracy recovery moves between
formats and ``--layer NODE=SCHEME`` names.

A ``npuc::FusedConv`` whose epilogue is a clamp stays one node through quantization (see
:mod:`.unfuse`): it is a Conv layer.
"""

from __future__ import annotations

LAYER_OPS = ("Conv", "Gemm", "MatMul")


def layer_op(node) -> str | None:
    """``"Conv"``, ``"Gemm"`` or ``"MatMul"`` when ``node`` is a layer, else None."""
    if not node.domain and node.op_type in LAYER_OPS:
        return node.op_type
    if node.domain == "npuc" and node.op_type == "FusedConv":
        return "Conv"
    return None

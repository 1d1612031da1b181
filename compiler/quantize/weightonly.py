"""Weight-only quantization: int8 or int4 weights, 16-bit float activations (W8A16, W4A16).

For MatMul-heavy models the weights dominate memory traffic while the activations carry
the outliers; storing the weights in int8 or int4 and computing in bf16/fp16 keeps the
activations' precision. A constant weight ``W`` of a MatMul or Gemm becomes

    DequantizeLinear(W_q, scale, axis, block_size) -> the unchanged float operator

with ``W_q`` symmetric (int8 in [-127, 127], int4 in [-7, 7]) and one scale per output
column (``group=0``) or per ``group`` consecutive weights along the reduction axis
(blocked DequantizeLinear, group sizes 32, 64, 128). The activation input is rounded to
the chip's 16-bit format by a Cast and back, as in :mod:`.floatq`. The executor runs both
with its DequantizeLinear and Cast kernels, so the lowered program computes the same
numbers.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph, Node

GROUPS = (0, 32, 64, 128)
_LEVELS = {8: (127, np.int8), 4: (7, ml_dtypes.int4)}


def parse_weight_only(spec: str) -> tuple[int, int, str | None] | None:
    """``"w4a16-g128"`` -> (bits 4, group 128, activations None: the chip's 16-bit
    format); ``"w8a16"`` -> (8, 0, None); None when ``spec`` is not a weight-only scheme."""
    s = spec.lower()
    if not s.startswith(("w8a16", "w4a16")):
        return None
    bits = int(s[1])
    group = 0
    rest = s[5:]
    if rest.startswith("-g"):
        try:
            group = int(rest[2:])
        except ValueError:
            group = -1
    elif rest:
        group = -1
    if group not in GROUPS:
        from npuc.ir.errors import NpucError

        raise NpucError(f"'{spec}': the group size must be one of 32, 64, 128 (or none, "
                        "one scale per output column)")
    return bits, group, None


def quantize_grouped(w: np.ndarray, bits: int, group: int, k_axis: int):
    """``(w_q, scale, axis, block)``: ``w`` symmetric per output column or per group of
    ``group`` along ``k_axis`` (the reduction axis of a 2-D weight)."""
    top, dtype = _LEVELS[bits]
    n_axis = 1 - k_axis
    if group == 0:
        amax = np.abs(w).max(axis=k_axis)
        scale = np.where(amax > 0, amax / top, 1.0).astype(np.float32)
        s = np.expand_dims(scale, k_axis)
        axis, block = n_axis, 0
    else:
        k = w.shape[k_axis]
        nblocks = -(-k // group)
        pad = [(0, 0), (0, 0)]
        pad[k_axis] = (0, nblocks * group - k)
        wp = np.moveaxis(np.pad(np.abs(w), pad), k_axis, 0)
        amax = wp.reshape(nblocks, group, -1).max(axis=1)  # [blocks, N]
        scale = np.where(amax > 0, amax / top, 1.0).astype(np.float32)
        scale = np.moveaxis(scale, 0, k_axis)
        s = np.repeat(scale, group, axis=k_axis).take(range(k), axis=k_axis)
        axis, block = k_axis, group
    wq = np.clip(np.rint(w / s), -top, top).astype(dtype)
    return wq, scale, axis, block


def weight_only_applies(node: Node) -> str | None:
    """None when ``node`` takes a weight-only scheme, else why not."""
    if node.domain or node.op_type not in ("MatMul", "Gemm"):
        return "weight-only quantization is for MatMul and Gemm"
    w = node.input(1)
    if w is None or w.const is None or w.const.ndim != 2:
        return "its weight is not a constant matrix"
    if node.op_type == "Gemm" and node.attrs.get("transA", 0):
        return "transA"
    return None


def rewrite_weight_only(g: Graph, node: Node, bits: int, group: int, act: str) -> str | None:
    """Give ``node`` int``bits`` weights (grouped when ``group``) and ``act`` activations
    (in place); returns why not when it does not apply."""
    from .floatq import _round_input

    why = weight_only_applies(node)
    if why:
        return why
    wv = node.input(1)
    w = wv.const.astype(np.float32)
    k_axis = 1 if node.op_type == "Gemm" and node.attrs.get("transB", 0) else 0
    wq, scale, axis, block = quantize_grouped(w, bits, group, k_axis)
    name = node.name or node.outputs[0].name
    attrs = {"axis": axis}
    if block:
        attrs["block_size"] = block
    dq = g.create_node("DequantizeLinear",
                       [g.add_constant(f"{wv.name}_w{bits}", wq),
                        g.add_constant(f"{wv.name}_w{bits}_scale", scale)],
                       [(f"{wv.name}_w{bits}_dq", wv.type)], attrs,
                       name=f"{name}_w_dequantize", before=node)
    node.set_input(1, dq.outputs[0])
    _round_input(g, node, 0, act, None)
    groups = f"groups of {group} along the reduction axis" if group else "per output column"
    log_of(g).record("quantize", name, f"w{bits}a16",
                     f"int{bits} weights ({groups}), {act} activations, fp32 accumulation")
    return None

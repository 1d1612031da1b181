"""A KV cache stored in fp8 (e4m3) with one scale per cache, in an fp8 program.

An fp8 decode program reads each cache through a per-tensor ``QuantizeLinear`` to fp8
e4m3 (its scale from calibration) and the ``DequantizeLinear`` after it, through layout
changes (the keys' ``Transpose``) at most. Storing the cache as those fp8 numbers, ``q =
fp8(value / scale)``, then loses nothing the program keeps: the reader's quantize of ``q
* scale`` gives ``q`` back (the product and the division are exact to float32, far
inside half an fp8 step), so the program computes bit for bit what it computed on the
float32 cache, at a quarter of its bytes. The ``kv_write`` command quantizes the new rows
as it writes them (the simulator does the same).

Every program of an artifact must store a cache the same way: :func:`store_fp8` takes the
scale the artifact chose for each cache (the first decode program's, from calibration),
gives it to this program's readers (their quantize and dequantize) when theirs differs,
and stores a cache nothing reads (a prefill's) with it too.
"""

from __future__ import annotations

import numpy as np

_LAYOUT = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity"}
FORMAT = "f8e4m3"


def _quantizers(value) -> list | None:
    """The per-tensor fp8 e4m3 ``QuantizeLinear`` nodes every reader of ``value`` reaches
    through layout changes; None when a reader is anything else."""
    found = []
    for node, _ in value.uses:
        if node.op_type in _LAYOUT and node.domain in ("", "ai.onnx"):
            below = _quantizers(node.outputs[0])
            if below is None:
                return None
            found += below
        elif _per_tensor_fp8(node):
            found.append(node)
        else:
            return None
    return found


def _per_tensor_fp8(node) -> bool:
    if node.op_type != "QuantizeLinear" or node.domain not in ("", "ai.onnx"):
        return False
    out = node.outputs[0].type
    scale = node.inputs[1]
    zero = node.inputs[2] if len(node.inputs) > 2 else None
    return getattr(out, "dtype", None) is not None and out.dtype.name == FORMAT and \
        scale.const is not None and scale.const.size == 1 and \
        (zero is None or (zero.const is not None and not np.any(zero.const.astype(np.float32)))) \
        and node.attrs.get("saturate", 1) == 1


def reader_scale(value) -> float | None:
    """The one scale the readers of a cache quantize it with, or None."""
    quants = _quantizers(value)
    if not quants:
        return None
    scales = {float(q.inputs[1].const.reshape(-1)[0]) for q in quants}
    return scales.pop() if len(scales) == 1 else None


def store_fp8(graph, cache, out, given: float | None) -> float | None:
    """Mark ``cache`` (the program's input) and ``out`` (its written result) as stored in
    fp8 with a scale: ``given`` (the artifact's, or None to take the readers'); returns
    the scale, or None when the cache cannot be stored so."""
    scale = reader_scale(out) if out.uses else None
    if out.uses and scale is None:
        return None
    if given is not None and scale is not None and given != scale:
        _rescale(graph, out, given)
    scale = given if given is not None else scale
    if scale is None:
        return None
    for v in (cache, out):
        v.meta["stored"] = FORMAT
        v.meta["stored_scale"] = scale
    return scale


def _rescale(graph, value, scale: float) -> None:
    """The readers' quantize (and the dequantize of each) use ``scale``."""
    for q in _quantizers(value):
        old = q.inputs[1]
        new = graph.add_constant(f"{q.name}/cache_scale",
                                 np.asarray(scale, old.const.dtype).reshape(old.const.shape))
        q.set_input(1, new)
        for node, _ in q.outputs[0].uses:
            if node.op_type == "DequantizeLinear" and node.inputs[1].const is not None and \
                    float(node.inputs[1].const.reshape(-1)[0]) == float(old.const.reshape(-1)[0]):
                node.set_input(1, new)

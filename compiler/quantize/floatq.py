"""Float formats the chip computes in: fp8 (e4m3), bf16, fp16.

The matrix units of RNGD (fp8, bf16) and ATOM (fp16) multiply inputs in the narrow
format and accumulate in fp32. That is expressed in the graph as a rounding of each
Conv/Gemm/MatMul input and weight to the format, in front of the unchanged float
operator: for fp8 a QuantizeLinear/DequantizeLinear pair with a per-tensor scale for
activations (``amax / 448``) and per-channel scales for weights; for bf16 and fp16 a Cast
to the format and back. Products of two fp8 or bf16 numbers are exact in fp32, so running
the float operator on the rounded values gives the chip's products; only the order of
the fp32 additions may differ.

For bf16 and fp16 an embedding table (a Gather of rows from a float constant) is rounded
as well, so that the whole model's weights are stored in the format (the scheduler stores
every constant that is exact in it at 2 bytes per element). For fp8 the table is rounded
to the chip's 16-bit format (``table_format``): its rows are read as they are, not fed to
the matrix unit, and a 16-bit table is half the bytes of a float32 one.

The optimizer's fused operators round the same inputs: ``npuc::FusedConv``,
``FusedGemm`` and ``FusedMatMul`` their data and weight (the bias and the activation stay
fp32, as the chip applies them to the fp32 accumulator), ``npuc::Attention`` its Q, K
and V, ``npuc::GatedMLP`` its data and both weights. Attention's probabilities between
its two products are internal to the kernel and are not rounded here: an estimate of that
one rounding is left out.
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np
from onnx import TensorProto

from npuc.ir.decisions import log_of
from npuc.ir.graph import Graph, Node
from npuc.ir.types import TensorType
from npuc.targets.precision import IR_DTYPE, ir_dtype, numpy_dtype

from .params import fp8_scale

E4M3 = numpy_dtype("fp8").type
# the float formats a tensor is rounded to: (ONNX element type, numpy type)
_CAST = {p: (ir_dtype(p).onnx, numpy_dtype(p).type) for p in ("bf16", "fp16")}


# the operators whose matrix-unit inputs are rounded, and which inputs those are
ROUNDED = {("", "Conv"): (0, 1), ("", "Gemm"): (0, 1), ("", "MatMul"): (0, 1),
           ("", "ConvTranspose"): (0, 1), ("npuc", "FusedConv"): (0, 1),
           ("npuc", "FusedGemm"): (0, 1), ("npuc", "FusedMatMul"): (0, 1),
           ("npuc", "Attention"): (0, 1, 2), ("npuc", "GatedMLP"): (0, 1, 2)}


def round_bf16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bf16 (ties to even), as float32: what
    ``astype(bfloat16).astype(float32)`` gives, by integer arithmetic on the bits in one
    pass (:func:`npuc.compiler.bf16_bits.round_to_bf16`), many times faster on large
    weights. NaN stays NaN."""
    from npuc.compiler.bf16_bits import round_to_bf16

    return round_to_bf16(x)


_reuse: contextvars.ContextVar = contextvars.ContextVar("npuc_reused_weights", default=None)


@contextlib.contextmanager
def reused_weights():
    """Within: a weight rounded to a format (or quantized to fp8) is made once and reused
    by later compiles that meet the same values (a decoder's prefill and decode forms and
    its decode program per batch hold the same weights, often read from two files): the
    same array as making it again, without the pass over the weight."""
    token = _reuse.set({})
    try:
        yield
    finally:
        _reuse.reset(token)


def _reused(kind, c: np.ndarray, make):
    """``make()``, or what it gave for an earlier weight equal to ``c`` (compared in full,
    piece by piece) inside :func:`reused_weights`."""
    from npuc.compiler.mapped import SPILL_BYTES

    cache = _reuse.get()
    if cache is None or c.nbytes < SPILL_BYTES:
        return make()
    key = (kind, c.shape, c.dtype.str, _fingerprint(c))
    for source, made in cache.get(key, ()):
        if _equal(source, c):
            return made
    made = make()
    cache.setdefault(key, []).append((c, made))
    return made


def _fingerprint(c: np.ndarray) -> str:
    """A digest of a few rows of ``c`` (first, middle, last): candidates, not proof."""
    import hashlib

    n = c.shape[0]
    h = hashlib.blake2b(digest_size=16)
    for i in sorted({0, n // 2, n - 1}):
        h.update(np.ascontiguousarray(c[i]).tobytes())
    return h.hexdigest()


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` and ``b`` hold the same bits, read piece by piece, pages given back."""
    from npuc.compiler.mapped import release, row_pieces

    for lo, hi in row_pieces(a):
        x, y = a[lo:hi], b[lo:hi]
        same = np.array_equal(np.ascontiguousarray(x).view(np.uint8),
                              np.ascontiguousarray(y).view(np.uint8))
        release(x)
        release(y)
        if not same:
            return False
    return True


def rounded_weight(c: np.ndarray, precision: str) -> np.ndarray:
    """Weight ``c`` rounded to ``precision`` (bf16, fp16), in its own dtype: ``c`` itself
    when every value is already exact (a checkpoint kept in bf16, zeros), else a new array
    made piece by piece (:func:`~npuc.compiler.mapped.filled`: a large one in a file),
    so that a mapped weight is never all in memory, nor twice. A new array is read-only
    and known exact (:func:`~npuc.compiler.schedule.storage.note_exact`: the schedule
    does not read it again to find so), unless a NaN kept as it is makes it inexact."""
    from npuc.compiler.bf16_bits import round_to_bf16
    from npuc.compiler.mapped import filled, release
    from npuc.compiler.schedule.storage import exact_in, note_exact

    np_type = _CAST[precision][1]
    nan = []

    def fill(lo, hi, out):
        piece = c if c.ndim == 0 else c[lo:hi]
        if precision == "bf16" and c.dtype == np.float32:
            round_to_bf16(piece, out)
            # a NaN keeps its bits (maybe not bf16's); the minimum shows one
            if out.size and np.isnan(np.min(out)):
                nan.append(lo)
        else:
            out[...] = piece.astype(np_type).astype(c.dtype)
        release(piece)

    def make():
        if c.dtype == np.float32 and exact_in(c, precision):
            note_exact(c, precision)
            return c
        out = filled(c.shape, c.dtype, fill)
        if c.dtype == np.float32:
            out.flags.writeable = False
            if not nan:
                note_exact(out, precision)
        return out
    return _reused(precision, c, make) if c.ndim else make()


def fp8_weight(c: np.ndarray, axis: int | None):
    """``(values, scale)``: weight ``c`` as float8 e4m3 with one scale per index of
    ``axis`` (per tensor when None), each scale mapping its slice's largest magnitude to
    448. Read in pieces of ``c``'s first axis, twice (the largest magnitudes, then the
    quotients), each piece's pages given back: the same numbers as the whole-array
    arithmetic, without a float32 temporary of the weight's size."""
    if c.ndim:
        return _reused(("fp8", axis), c, lambda: _fp8_weight(c, axis))
    return _fp8_weight(c, axis)


def _fp8_weight(c: np.ndarray, axis: int | None):
    from npuc.compiler.mapped import filled, release, row_pieces

    rows, amax = [], None  # per piece along axis 0; else reduced over the pieces
    for lo, hi in row_pieces(c):
        piece = np.abs(c if c.ndim == 0 else c[lo:hi])
        if axis == 0:
            rows.append(piece.reshape(piece.shape[0], -1).max(axis=1))
        else:
            if axis is None:
                m = piece.max() if piece.size else np.float32(0)
            else:
                m = np.moveaxis(piece, axis, 0).reshape(piece.shape[axis], -1).max(axis=1)
            amax = m if amax is None else np.maximum(amax, m)
        release(c if c.ndim == 0 else c[lo:hi])
    if rows:
        amax = np.concatenate(rows)
    scale = fp8_scale(amax if amax is not None else 0.0)
    shape = [1] * c.ndim
    if axis is not None:
        shape[axis] = -1
    per = scale.reshape(shape)

    def fill(lo, hi, out):
        piece = c if c.ndim == 0 else c[lo:hi]
        s = per if axis != 0 or c.ndim == 0 else per[lo:hi]
        out[...] = (piece / s).astype(E4M3)
        release(piece)
    return filled(c.shape, E4M3, fill), scale


def _weight_axis(node: Node, index: int) -> int:
    op = node.op_type[len("Fused"):] if node.op_type.startswith("Fused") else node.op_type
    if op == "Conv":
        return 0
    if op == "Gemm":
        return 0 if node.attrs.get("transB", 0) else 1
    return -1


def _round_input(g: Graph, node: Node, i: int, precision: str, amax: float | None):
    v = node.inputs[i]
    name = node.name or node.outputs[0].name
    if precision in ("fp8", "fp8-tensor"):
        if v.const is not None:
            axis = _weight_axis(node, i) % v.const.ndim if v.const.ndim else None
            per_tensor = precision == "fp8-tensor" or axis is None
            wq, scale = fp8_weight(v.const, None if per_tensor else axis)
            shape = [] if per_tensor else [1] * v.const.ndim
            src = g.add_constant(f"{v.name}_fp8", wq)
            ins = [src, g.add_constant(f"{v.name}_fp8_scale", scale)]
            dq = g.create_node("DequantizeLinear", ins, [(f"{v.name}_dq", v.type)],
                               {"axis": axis} if shape else {},
                               name=f"{name}_w_dequantize", before=node)
        else:
            if amax is None:
                return
            scale = fp8_scale(amax)
            zp = g.add_constant(f"{v.name}_fp8_zero_point", np.zeros((), E4M3))
            q = g.create_node("QuantizeLinear", [v, g.add_constant(f"{v.name}_fp8_scale", scale),
                                                 zp],
                              [(f"{v.name}_fp8", TensorType("f8e4m3", v.type.shape))],
                              name=f"{name}_x{i}_quantize", before=node)
            dq = g.create_node("DequantizeLinear", [q.outputs[0], q.inputs[1], zp],
                               [(f"{v.name}_x{i}_dq", v.type)], name=f"{name}_x{i}_dequantize",
                               before=node)
        node.set_input(i, dq.outputs[0])
        return
    code, np_type = _CAST[precision]
    if v.const is not None:
        # weights are stored in the format: the rounded values as a constant, with no
        # conversion node the scheduler would price as a pass over the weights
        node.set_input(i, g.add_constant(f"{v.name}_{precision}",
                                         rounded_weight(v.const, precision)))
        return
    narrow = v.type.with_dtype(IR_DTYPE[precision])
    down = g.create_node("Cast", [v], [(f"{v.name}_{precision}", narrow)],
                         {"to": code}, name=f"{name}_x{i}_cast", before=node)
    back = g.create_node("Cast", [down.outputs[0]], [(f"{v.name}_{precision}_f32", v.type)],
                         {"to": TensorProto.FLOAT}, name=f"{name}_x{i}_uncast", before=node)
    node.set_input(i, back.outputs[0])


def _is_table(node: Node) -> bool:
    """A Gather of rows from a constant float table (an embedding)."""
    return node.domain in ("", "ai.onnx") and node.op_type == "Gather" and \
        node.attrs.get("axis", 0) == 0 and node.inputs[0].const is not None and \
        node.inputs[0].const.dtype == np.float32


def rewrite_float(g: Graph, precision: str, amax: dict[str, float], keep_float=(),
                  only=None, table_format: str | None = None) -> Graph:
    """Round the matrix-unit inputs of every Conv, Gemm and MatMul (plain or fused) and
    Attention to ``precision`` (in place); ``only``: just these node names.

    ``fp8-tensor`` is fp8 with one scale for a whole weight instead of one per channel.
    ``table_format``: the 16-bit format (bf16, fp16) an embedding table is rounded to
    when ``precision`` is not one (fp8); None leaves it float32."""
    from .rewrite import keep_reasons

    keep = keep_reasons(keep_float)
    for node in list(g.nodes):
        which = ROUNDED.get((node.domain if node.domain != "ai.onnx" else "", node.op_type))
        fmt = precision
        if which is None and _is_table(node) and only is None:
            # an embedding table is stored in the format its rows are used in
            fmt = precision if precision in _CAST else table_format
            which = (0,) if fmt in _CAST else None
        if which is None or (only is not None and node.name not in only):
            continue
        if node.name in keep:
            log_of(g).record("quantize", node.name, "kept float", keep[node.name])
            continue
        for i in which:
            v = node.input(i)
            if v is None or not isinstance(v.type, TensorType):
                continue
            _round_input(g, node, i, fmt, amax.get(v.name))
        what = f"inputs and weights rounded to {fmt}, fp32 accumulation" if fmt == precision \
            else f"table rounded to {fmt} (rows read as they are, not multiplied at {precision})"
        log_of(g).record("quantize", node.name or node.outputs[0].name, fmt, what)
    for v in list(g.constants.values()):
        if not v.uses and v not in g.outputs:
            g.remove_constant(v)
    return g


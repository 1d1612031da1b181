"""Which part of each input a node needs to produce one tile of its output.

A tile is a run ``[lo, hi)`` of one output axis. For each input, a rule answers with a
:class:`Need`: the run of one of the input's axes to read, or ``Need.whole()`` when the
node reads all of it (weights, broadcast operands). Convolutions and pools need a halo:
the rows their window reaches beyond the tile, with the padding recomputed per tile so
that only the true border of the image is padded:

    first input row  r0 = lo * stride - pad_top
    last input row   r1 = (hi - 1) * stride - pad_top + (kernel - 1) * dilation + 1
    the tile reads   [max(r0, 0), min(r1, H))  and pads by  max(-r0, 0), max(r1 - H, 0)

A matrix op with constant 2-D weights can also be cut along its output columns: each
tile then reads all of its input and the columns ``[lo, hi)`` of its weights, so a layer
whose weights do not fit the SRAM streams them through it a slice at a time.

A rule returns None when the op cannot be cut along that axis (a softmax along its own
axis, a reshape); such groups run as one tile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from npuc.ir.schema import base_op  # noqa: F401  (read here by lowering and grouping)

ELEMENTWISE = {
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Where", "Relu", "Clip",
    "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Exp", "Log",
    "Sqrt", "Reciprocal", "Erf", "Softplus", "Neg", "Abs", "Cast", "Identity", "Gelu",
    "Elu", "Selu", "Not", "And", "Or", "Equal", "Less", "Greater", "Floor", "Ceil", "Round",
    "Sin", "Cos", "Sign", "Mish", "Requantize", "Lut",
}
# elementwise ops whose inputs after the first are parameters, read whole
PARAMETERIZED = {"QuantizeLinear", "DequantizeLinear", "Lut"}
CONV_LIKE = {"Conv", "MaxPool", "AveragePool"}
MATMUL_LIKE = {"MatMul", "Gemm", "GatedMLP"}
# the inputs of a matrix op that are its weights (read whole when tiling along rows)
WEIGHT_INPUTS = {"MatMul": (1,), "Gemm": (1,), "GatedMLP": (1, 2)}
LAST_AXIS = {"Softmax", "LogSoftmax", "LayerNormalization", "LayerNorm", "RMSNormalization",
             "RMSNorm", "Rotary"}
CHANNEL_REDUCE = {"GlobalAveragePool", "GlobalMaxPool"}


@dataclass(frozen=True)
class Need:
    """A run ``[lo, hi)`` of input axis ``axis``; ``axis=None`` means the whole tensor."""

    axis: int | None
    lo: int = 0
    hi: int = 0

    @staticmethod
    def whole() -> "Need":
        return Need(None)


@dataclass
class TileRule:
    """What one node reads for one output tile, and attributes changed for that tile."""

    needs: list[Need | None]          # one per input (None for an absent input)
    attrs: dict = field(default_factory=dict)


def shape_of(value) -> tuple[int, ...] | None:
    shape = getattr(getattr(value, "type", None), "shape", None)
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return tuple(shape)


def _aligned(value, out_rank: int, axis: int, lo: int, hi: int) -> Need:
    """Numpy broadcasting: the input axis under output ``axis``, or whole if broadcast."""
    shape = shape_of(value)
    a = axis - (out_rank - len(shape))
    if a < 0 or shape[a] == 1:
        return Need.whole()
    return Need(a, lo, hi)


def allowed_axes(node) -> list[int]:
    """Output axes along which ``node`` can be tiled, best first."""
    if len([o for o in node.outputs if o is not None]) != 1 or len(node.outputs) != 1 \
            and any(o is not None for o in node.outputs[1:]):
        return []
    out = shape_of(node.outputs[0])
    if out is None or any(shape_of(v) is None for v in node.inputs if v is not None):
        return []
    op, rank = base_op(node), len(out)
    if op in CONV_LIKE:
        if rank != 4 or (op == "AveragePool" and node.attrs.get("ceil_mode", 0)):
            return []
        return [2, 0]
    if op in MATMUL_LIKE:
        if op == "Gemm" and node.attrs.get("transA", 0):
            return []
        if len(shape_of(node.inputs[0])) < 2 or len(shape_of(node.inputs[1])) < 2:
            return []
        columns = [rank - 1] if weight_column_axes(node) else []
        return [rank - 2] + list(range(rank - 2)) + columns
    if op == "BatchNormalization":
        return [2, 0, 3] if rank == 4 else [0]
    if op in LAST_AXIS:
        opset = node.graph.opset_of("") if node.graph is not None else None
        # before opset 13 a softmax flattens from its axis (default 1) on
        default = 1 if op in ("Softmax", "LogSoftmax") and (opset or 13) < 13 else -1
        first = node.attrs.get("axis", default)
        first = first + rank if first < 0 else first
        return list(range(first - 1, -1, -1)) if first > 0 else []
    if op in CHANNEL_REDUCE:
        return [1, 0]
    if gathered_table(node, 0):  # rows of the output are rows of the indices
        return [a for a in range(len(shape_of(node.inputs[1]))) if out[a] > 1]
    if op in ELEMENTWISE or op in PARAMETERIZED:
        return sorted(range(rank), key=lambda a: (out[a] <= 1, a))
    return []


def gathered_table(node, index: int) -> bool:
    """True for the constant table of a row Gather (an embedding): the DMA engine reads
    the rows the indices name straight from DRAM, so the table is never loaded whole."""
    return index == 0 and base_op(node) == "Gather" and node.domain in ("", "ai.onnx") and \
        node.attrs.get("axis", 0) == 0 and node.inputs[0].const is not None and \
        node.inputs[1].const is None


def _is_weight(v) -> bool:
    """A constant, or the dequantization of one (fp8 weights widened as they load)."""
    if v.const is not None:
        return True
    p = v.producer
    return p is not None and p.op_type == "DequantizeLinear" and p.inputs[0].const is not None


def weight_column_axes(node) -> dict[int, int] | None:
    """``{input: axis}`` of the output columns in each constant 2-D weight of a matrix op,
    or None when its weights are not such (then it cannot be cut along its columns)."""
    op = base_op(node)
    found = {}
    for i in WEIGHT_INPUTS.get(op, ()):
        v = node.inputs[i] if i < len(node.inputs) else None
        if v is None or not _is_weight(v) or len(shape_of(v) or ()) != 2:
            return None
        found[i] = 0 if op == "Gemm" and node.attrs.get("transB", 0) else 1
    return found or None


def tile_rule(node, axis: int, lo: int, hi: int) -> TileRule | None:
    """What ``node`` reads to produce ``[lo, hi)`` of output ``axis``; None if it cannot."""
    if axis not in allowed_axes(node):
        return None
    op = base_op(node)
    rank = len(shape_of(node.outputs[0]))
    present = [v for v in node.inputs]
    if op in CONV_LIKE:
        return _conv_rule(node, op, axis, lo, hi)
    if op in MATMUL_LIKE and axis == rank - 1:  # columns: a slice of every weight
        columns = weight_column_axes(node)
        needs = []
        for i, v in enumerate(present):
            if v is None:
                needs.append(None)
            elif i in columns:
                needs.append(Need(columns[i], lo, hi))
            elif i == 0:
                needs.append(Need.whole())
            else:
                needs.append(_aligned(v, rank, axis, lo, hi))
        return TileRule(needs)
    if op in MATMUL_LIKE:
        needs = []
        for i, v in enumerate(present):
            if v is None:
                needs.append(None)
            elif i in WEIGHT_INPUTS[op] and axis == rank - 2:
                needs.append(Need.whole())
            else:
                needs.append(_aligned(v, rank, axis, lo, hi))
        return TileRule(needs)
    if op == "BatchNormalization":
        return TileRule([Need(axis, lo, hi)] + [None if v is None else Need.whole()
                                                for v in present[1:]])
    if op in CHANNEL_REDUCE:
        return TileRule([Need(axis, lo, hi)])
    if op in ("QuantizeLinear", "DequantizeLinear"):
        return _quantize_rule(node, rank, axis, lo, hi)
    if gathered_table(node, 0):
        return TileRule([Need.whole(), Need(axis, lo, hi)])
    if op in PARAMETERIZED:
        return TileRule([Need(axis, lo, hi)] + [None if v is None else Need.whole()
                                                for v in present[1:]])
    return TileRule([None if v is None else _aligned(v, rank, axis, lo, hi) for v in present])


def conv_geometry(node) -> tuple[list[int], list[int], list[int], list[int]]:
    """``(kernel, strides, dilations, pads)`` of a conv or pool, pads made explicit."""
    from npuc.compiler.executor.kernels.windows import conv_pads

    x = shape_of(node.inputs[0])
    op = base_op(node)
    if op == "Conv":
        kernel = list(node.attrs.get("kernel_shape") or shape_of(node.inputs[1])[2:])
    else:
        kernel = list(node.attrs["kernel_shape"])
    nd = len(kernel)
    strides = list(node.attrs.get("strides") or [1] * nd)
    dilations = list(node.attrs.get("dilations") or [1] * nd)
    pads = list(conv_pads(node.attrs.get("auto_pad"), x[2:], kernel, strides, dilations,
                          node.attrs.get("pads")))
    return kernel, strides, dilations, pads


def _conv_rule(node, op: str, axis: int, lo: int, hi: int) -> TileRule:
    out = shape_of(node.outputs[0])
    needs: list[Need | None] = []
    attrs: dict = {}
    if axis == 0:
        first = Need(0, lo, hi)
    else:
        kernel, strides, dilations, pads = conv_geometry(node)
        height = shape_of(node.inputs[0])[2]
        r0 = lo * strides[0] - pads[0]
        r1 = (hi - 1) * strides[0] - pads[0] + (kernel[0] - 1) * dilations[0] + 1
        first = Need(2, max(r0, 0), min(r1, height))
        tile_pads = list(pads)
        tile_pads[0], tile_pads[2] = max(-r0, 0), max(r1 - height, 0)
        attrs = {"pads": tile_pads, "auto_pad": "NOTSET"}
        if op == "MaxPool":
            attrs["ceil_mode"] = 0
    needs.append(first)
    for v in node.inputs[1:]:
        if v is None:
            needs.append(None)
        elif v.const is None and shape_of(v) == out:
            needs.append(Need(axis, lo, hi))  # a fused residual operand
        else:
            needs.append(Need.whole())
    return TileRule(needs, attrs)


def _quantize_rule(node, rank: int, axis: int, lo: int, hi: int) -> TileRule | None:
    """Per-tensor scales are read whole; per-axis scales and zero points (one per index of
    the ``axis`` attribute) are cut with the tile when the tile runs along that axis."""
    q_axis = node.attrs.get("axis", 1)
    q_axis = q_axis + rank if q_axis < 0 else q_axis
    needs: list[Need | None] = [Need(axis, lo, hi)]
    for v in node.inputs[1:]:
        shape = shape_of(v) if v is not None else None
        if v is None:
            needs.append(None)
        elif shape is None or len(shape) > 1:
            return None  # blocked quantization: run as one tile
        elif len(shape) == 1 and shape[0] > 1 and q_axis == axis:
            needs.append(Need(0, lo, hi))
        else:
            needs.append(Need.whole())
    return TileRule(needs)

"""How much work a node is: multiply-accumulates, vector elements, bytes.

Every op that uses the MAC array is seen as one or more matrix products
(:class:`GemmView`): ``groups`` independent products of an ``m x k`` by a ``k x n``
matrix, where ``m`` counts output positions, ``n`` output channels and ``k`` the
reduction. The formulas, with ``g`` the group count:

- Conv, out ``[N, Cout, *S]``, weight ``[Cout, Cin/g, *K]``:
  ``groups = g``, ``m = N * prod(S)``, ``n = Cout/g``, ``k = Cin/g * prod(K)``.
- ConvTranspose, input ``[N, Cin, *S]``, weight ``[Cin, Cout/g, *K]`` (each input pixel
  scatters into a kernel window): ``groups = g``, ``m = N * prod(S)``,
  ``n = Cout/g * prod(K)``, ``k = Cin/g``.
- Gemm ``A[M, K] @ B[K, N]`` (after transA/transB): ``m = M``, ``n = N``, ``k = K``.
- MatMul ``[..., M, K] @ [..., K, N]``: ``groups = prod(...)`` of the output's batch dims;
  when the right operand is one matrix (a weight) shared by the whole batch, the batch
  rows are one product instead: ``m = prod(...) * M`` (a decode step's ``[B, 1, K]``
  times ``[K, N]`` is one GEMM with ``m = B``).
- GatedMLP ``x @ Wg`` and ``x @ Wu``: one product of twice the width, ``n = 2 N``.
- Attention, q ``[..., Sq, D]``, k ``[..., Sk, D]``, v ``[..., Sk, Dv]`` (rank 3 with a
  ``num_heads`` attribute splits D and Dv into heads): two products per head,
  ``Q K^T`` (``m = Sq, n = Sk, k = D``) and ``P V`` (``m = Sq, n = Dv, k = Sk``); the
  softmax between them is ``Sq * Sk`` vector elements per head.

Other ops are vector work: the element count of their largest input or output (a
reduction reads every input element). Fused ops (``npuc::FusedConv``) are their base op
plus one vector pass over the output per fused epilogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from npuc.ir.errors import NpucError
from npuc.ir.schema import base_op

# Ops that only relabel a tensor: no vector work (their bytes still count when alone).
VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}


@dataclass(frozen=True)
class GemmView:
    """``groups`` independent matrix products ``[m, k] @ [k, n]``."""

    groups: int
    m: int
    n: int
    k: int

    @property
    def macs(self) -> int:
        return self.groups * self.m * self.n * self.k


def static_shape(value, node) -> tuple[int, ...]:
    """The known shape of ``value``, or an NpucError naming the node."""
    shape = getattr(getattr(value, "type", None), "shape", None)
    if shape is None or not all(isinstance(d, int) for d in shape):
        raise NpucError(f"cannot estimate the cost of {node.describe()}: the shape of "
                        f"%{getattr(value, 'name', '?')} is not known ({shape})")
    return tuple(shape)


def nbytes(value, node) -> int:
    """Bytes of a tensor at its element type (sub-byte types packed)."""
    shape = static_shape(value, node)
    return (math.prod(shape) * value.type.dtype.bits + 7) // 8


def read_bytes(node, value) -> int:
    """Bytes ``node`` reads of ``value``: all of it, except a row Gather's constant table,
    of which only the gathered rows (the output's size at the table's element type)."""
    if node.op_type == "Gather" and node.domain in ("", "ai.onnx") and \
            node.attrs.get("axis", 0) == 0 and node.inputs and node.inputs[0] is value:
        return (numel(node.outputs[0], node) * value.type.dtype.bits + 7) // 8
    return nbytes(value, node)


def numel(value, node) -> int:
    return math.prod(static_shape(value, node))


def _conv(node) -> list[GemmView]:
    out, w = static_shape(node.outputs[0], node), static_shape(node.inputs[1], node)
    g = int(node.attrs.get("group", 1) or 1)
    return [GemmView(g, out[0] * math.prod(out[2:]), w[0] // g, math.prod(w[1:]))]


def _conv_transpose(node) -> list[GemmView]:
    x, w = static_shape(node.inputs[0], node), static_shape(node.inputs[1], node)
    g = int(node.attrs.get("group", 1) or 1)
    return [GemmView(g, x[0] * math.prod(x[2:]), math.prod(w[1:]), x[1] // g)]


def _gemm(node) -> list[GemmView]:
    a, out = static_shape(node.inputs[0], node), static_shape(node.outputs[0], node)
    k = a[0] if node.attrs.get("transA", 0) else a[1]
    return [GemmView(1, out[0], out[1], k)]


def _matmul(node) -> list[GemmView]:
    a, b = static_shape(node.inputs[0], node), static_shape(node.inputs[1], node)
    out = static_shape(node.outputs[0], node)
    m = a[-2] if len(a) >= 2 else 1
    n = b[-1] if len(b) >= 2 else 1
    batch = out[:-2] if len(a) >= 2 and len(b) >= 2 else out[:-1] if len(out) else ()
    if len(a) >= 2 and math.prod(b[:-2]) == 1:  # one shared right matrix: fold the batch
        return [GemmView(1, math.prod(batch) * m, n, a[-1])]
    return [GemmView(math.prod(batch), m, n, a[-1])]


def _attention_dims(node):
    q, k = static_shape(node.inputs[0], node), static_shape(node.inputs[1], node)
    v = static_shape(node.inputs[2], node)
    heads = int(node.attrs.get("num_heads", 1) or 1) if len(q) == 3 else 1
    groups = math.prod(q[:-2]) * heads
    # npuc::Attention reads the key transposed, [..., D, Sk]
    sk = k[-1] if node.domain == "npuc" and len(q) != 3 else k[-2]
    return groups, q[-2], sk, q[-1] // heads, v[-1] // heads


def _attention(node) -> list[GemmView]:
    groups, sq, sk, d, dv = _attention_dims(node)
    return [GemmView(groups, sq, sk, d), GemmView(groups, sq, dv, sk)]


def _gated_mlp(node) -> list[GemmView]:
    """Two products sharing their input: gate and up (one GEMM of twice the width)."""
    (view,) = _matmul(node)
    return [GemmView(view.groups, view.m, 2 * view.n, view.k)]


MAC_OPS = {"Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm,
           "MatMul": _matmul, "Attention": _attention, "GatedMLP": _gated_mlp}


def gemm_views(node) -> list[GemmView]:
    """The matrix products a node runs on the MAC array (empty for vector ops)."""
    formula = MAC_OPS.get(base_op(node))
    return formula(node) if formula else []


def epilogue_count(node) -> int:
    """How many ops a fused node applies after its base op."""
    value = node.attrs.get("activation")
    if not value or value == "none":
        return 0
    return len(value) if isinstance(value, (list, tuple)) else 1


def _same_dtype(node) -> bool:
    """A Cast between equal types: the rounding of a matrix-unit input to the format the
    chip computes in, seen at that format (the cost view), which the unit's input stage
    does as it reads; no pass of its own."""
    a, b = node.inputs[0], node.outputs[0]
    ta, tb = getattr(a, "type", None), getattr(b, "type", None)
    return getattr(ta, "dtype", None) is not None and getattr(ta, "dtype", 0) == \
        getattr(tb, "dtype", 1)


def vector_elements(node) -> int:
    """Elements processed outside the MAC array (elementwise, reductions, softmax)."""
    base = base_op(node)
    if base in VIEW_OPS or (base == "Cast" and _same_dtype(node)):
        return 0
    if base == "Attention":
        groups, sq, sk, _, _ = _attention_dims(node)
        return groups * sq * sk
    if base == "GatedMLP":  # the activation and the product
        return 2 * numel(node.outputs[0], node)
    if base in MAC_OPS:
        return numel(node.outputs[0], node) * epilogue_count(node)
    tensors = [v for v in list(node.inputs) + list(node.outputs) if v is not None]
    return max((numel(v, node) for v in tensors), default=0)

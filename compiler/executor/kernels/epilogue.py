"""Activation epilogues applied with the ONNX kernels: what npuc's fused operators
(:mod:`npuc.compiler.ops.fused`) and onnxruntime's FusedConv run after their product.

:class:`Epilogue` is the same work done to one finished tile of a product while it is in
cache (``accumulate.matmul(..., epilogue=...)``, the float32 convolution): a bias added,
then a residual (the other operand of an Add that reads the product, see
:mod:`npuc.compiler.executor.fusion`), then the activation, each element computing what
the separate Add and activation kernels compute for it."""

from __future__ import annotations

import dataclasses

import numba as nb
import numpy as np

from . import KernelContext, ResidualMismatch, get_kernel, tiles32
from .binary import clip_value


def activate(y: np.ndarray, name: str, params, ctx, fresh: bool = False) -> np.ndarray:
    """Apply an epilogue activation with the ONNX kernels; ``fresh``: ``y`` is the product
    just computed, which nobody else holds, so the activation may overwrite it."""
    if not name:
        return y
    ctx = dataclasses.replace(ctx, donated=(0,) if fresh else ())
    params = list(params)
    if name == "Clip":
        lo, hi = (np.asarray(p, dtype=y.dtype) for p in params)
        return get_kernel("Clip")([y, lo, hi], {}, ctx)[0]
    if name in ("Gelu", "GeluTanh"):
        approx = "tanh" if name == "GeluTanh" else "none"
        return get_kernel("Gelu")([y], {"approximate": approx}, ctx)[0]
    attrs = {}
    if name in ("LeakyRelu", "Elu"):
        attrs["alpha"] = params[0]
    elif name == "HardSigmoid":
        attrs["alpha"], attrs["beta"] = params
    return get_kernel(name)([y], attrs, ctx)[0]


@dataclasses.dataclass(frozen=True)
class Epilogue:
    """Bias, then residual, then activation, applied in place to a tile of a product's
    result.

    ``bias``: None, or an array that broadcasts to the whole result (a row bias of an
    ``m x n`` product has shape ``(m, 1)``, a column bias ``(n,)``; a batched product's
    bias may carry batch axes). ``activation`` and ``params`` are those of the fused
    operators (``""`` for none); ``ctx`` is the node's kernel context, needed only by
    the activations that run through their ONNX kernel (all but Relu and Clip).
    ``residual``: None, or a C-contiguous array of the result's size and dtype added to
    it element for element after the bias (the result and the residual seen with the
    same shape).

    Called as ``epilogue(tile, index, rows, cols, shape)``: ``tile`` is the writable view
    ``result[index][rows, cols]`` (``index`` a tuple over the batch axes, ``rows`` and
    ``cols`` slices of the last two axes) and ``shape`` the whole result's shape; the
    numbers of an element do not depend on the tile it is in.
    """

    bias: np.ndarray | None = None
    activation: str = ""
    params: tuple = ()
    ctx: object = None
    residual: np.ndarray | None = None

    def __post_init__(self):
        # the float32 fast path, decided once: clamp bounds, and the bias as one value per
        # row or per column of the last two axes (None: the general path)
        bounds, rows, cols = self.clamp(), None, None
        b = self.bias
        if b is not None and (b.dtype != np.float32 or b.size <= 1):
            bounds = None
        elif b is not None and b.ndim >= 2 and b.shape[-1] == 1 and b.size == b.shape[-2]:
            rows = b.reshape(-1)
        elif b is not None and b.ndim == 1:
            cols = b
        elif b is not None:
            bounds = None
        res = self.residual
        if res is not None and not (res.dtype == np.float32 and res.flags.c_contiguous):
            bounds = None
        none = np.empty(0, np.float32)
        object.__setattr__(self, "_fast", None if bounds is None else (
            none if rows is None else np.ascontiguousarray(rows),
            none if cols is None else np.ascontiguousarray(cols), *bounds,
            none if res is None else res.reshape(-1)))

    def __bool__(self) -> bool:
        return self.bias is not None or self.residual is not None or bool(self.activation)

    def __call__(self, tile: np.ndarray, index: tuple, rows: slice, cols: slice,
                 shape: tuple) -> None:
        if self._fast is not None and self.residual is None and _spans(tile):
            # the rows as one unit-stride span, which Numba's loops vectorise
            r0 = rows.indices(shape[-2])[0]
            self.span(row_span(tile), 0, tile.strides[0] // 4, r0, r0 + tile.shape[0],
                      cols.indices(shape[-1])[0], tile.shape[1])
            return
        if self.bias is not None:  # a broadcast view: nothing is copied
            np.add(tile, np.broadcast_to(self.bias, shape)[index][rows, cols], out=tile,
                   casting="unsafe")
        if self.residual is not None:
            np.add(tile, self.residual.reshape(shape)[index][rows, cols], out=tile,
                   casting="unsafe")
        self.activate(tile)

    def with_residual(self, residual: np.ndarray) -> Epilogue:
        """This epilogue (without a residual) with ``residual`` added before its
        activation: ``dataclasses.replace(self, residual=residual)``, without deciding
        the rest again."""
        new = object.__new__(Epilogue)
        new.__dict__.update(self.__dict__)
        object.__setattr__(new, "residual", residual)
        fast = self._fast
        if fast is not None and not (residual.dtype == np.float32 and
                                     residual.flags.c_contiguous):
            fast = None
        object.__setattr__(new, "_fast", None if fast is None else
                           fast[:4] + (residual.reshape(-1),))
        return new

    def fast(self) -> bool:
        """Whether :meth:`span` can apply this epilogue (a float32 bias per row or per
        column, or none, a float32 residual or none, and a clamp activation: Relu, Clip,
        none)."""
        return self._fast is not None

    def span(self, flat: np.ndarray, start: int, step: int, r0: int, r1: int, c0: int,
             width: int) -> None:
        """The epilogue on rows ``r0:r1``, columns ``c0:c0 + width`` of the result (any
        batch index), stored as ``flat[start + (r - r0) * step:][:width]`` in a float32
        unit-stride buffer; only when :meth:`fast`. No Python view per tile. With a
        residual, ``flat`` is the whole result, laid out as the residual is."""
        row_bias, col_bias, lo, hi, res = self._fast
        row_bias = row_bias[r0:r1] if len(row_bias) else row_bias
        col_bias = col_bias[c0:c0 + width] if len(col_bias) else col_bias
        if len(res):
            bias_residual_clamp(flat, res, start, step, r1 - r0, width, row_bias, col_bias,
                                lo, hi)
        else:
            bias_clamp(flat, start, step, r1 - r0, width, row_bias, col_bias, lo, hi)

    def tiles(self) -> tuple | None:
        """``(row bias, residual, lo, hi, flags)`` for :func:`.tiles32.gemm` when
        :meth:`fast` and the bias, if any, is one per row; else None."""
        if self._fast is None or len(self._fast[1]):
            return None
        row_bias, col_bias, lo, hi, res = self._fast
        flags = ((tiles32.BIAS if len(row_bias) else 0) |
                 (tiles32.RESIDUAL if len(res) else 0) | (tiles32.CLAMP if lo <= hi else 0))
        return row_bias, res, lo, hi, flags

    def clamp(self) -> tuple | None:
        """The activation as float32 bounds ``(lo, hi)`` of a clamp (none: lo > hi), or
        None when it is not one (Clip with min > max gives max everywhere)."""
        act, p = self.activation, self.params
        if not act:
            return np.float32(1), np.float32(0)
        if act == "Relu":
            return np.float32(0), np.float32(np.inf)
        if act == "Clip" and float(p[0]) <= float(p[1]):
            return np.float32(p[0]), np.float32(p[1])
        return None

    def check(self, size: int) -> None:
        """Raise :class:`ResidualMismatch` unless the residual, if any, has ``size``
        elements: the result's (before the kernel writes anything, so that the
        interpreter can run the nodes separately instead)."""
        if self.residual is not None and self.residual.size != size:
            raise ResidualMismatch(f"a residual of shape {self.residual.shape} for a result "
                                   f"of {size} elements")

    def after(self, y: np.ndarray) -> np.ndarray:
        """The residual, then the activation, in place on a whole result ``y`` that already
        has its bias (a kernel's path that does not apply the epilogue per tile)."""
        self.check(y.size)
        if self.residual is not None:
            np.add(y, self.residual.reshape(y.shape), out=y, casting="unsafe")
        self.activate(y)
        return y

    def activate(self, tile: np.ndarray) -> None:
        """The activation alone, in place on ``tile``."""
        act = self.activation
        if not act:
            return
        if act == "Relu" and tile.dtype.kind == "f":
            np.maximum(tile, tile.dtype.type(0), out=tile)
        elif act == "Clip" and tile.dtype.kind == "f":
            # np.minimum(np.maximum(x, lo), hi), as the Clip kernel computes it
            lo, hi = (tile.dtype.type(p) for p in self.params)
            np.maximum(tile, lo, out=tile)
            np.minimum(tile, hi, out=tile)
        else:
            y = activate(np.ascontiguousarray(tile), act, self.params,
                         self.ctx if self.ctx is not None else KernelContext(), fresh=True)
            np.copyto(tile, y, casting="unsafe")


def row_span(view: np.ndarray) -> np.ndarray:
    """The rows of a 2-D float32 view with unit column stride as one 1-D span of its
    buffer (row ``i`` starting at ``i * view.strides[0] // 4``), no copy."""
    rows, cols = view.shape
    return np.lib.stride_tricks.as_strided(
        view, ((rows - 1) * (view.strides[0] // 4) + cols,), (4,))


def _spans(tile: np.ndarray) -> bool:
    """Whether the rows of a 2-D float32 ``tile`` are unit-stride spans of one buffer
    (what :meth:`Epilogue.span` needs)."""
    return (tile.ndim == 2 and tile.dtype == np.float32 and tile.size > 0 and
            tile.strides[1] == 4 and tile.strides[0] >= 4 * tile.shape[1] and
            tile.strides[0] % 4 == 0)


@nb.njit(cache=True, nogil=True)
def bias_clamp(flat, start, step, rows, cols, row_bias, col_bias, lo, hi):
    """Rows ``flat[start + i * step:][:cols]`` + bias (a value per row, or per column),
    then clamped to [lo, hi] as the Clip kernel clamps (NaN stays NaN, an equal bound
    wins) unless lo > hi."""
    clamp = lo <= hi
    for i in range(rows):
        row = flat[start + i * step:start + i * step + cols]  # unit stride: vectorises
        if len(row_bias) and clamp:  # one pass: the same two operations per element
            rb = row_bias[i]
            for j in range(cols):
                row[j] = clip_value(row[j] + rb, lo, hi)
            continue
        if len(row_bias):
            rb = row_bias[i]
            for j in range(cols):
                row[j] = row[j] + rb
        elif len(col_bias):
            for j in range(cols):
                row[j] = row[j] + col_bias[j]
        if clamp:
            for j in range(cols):
                row[j] = clip_value(row[j], lo, hi)


@nb.njit(cache=True, nogil=True)
def bias_residual_clamp(flat, res, start, step, rows, cols, row_bias, col_bias, lo, hi):
    """:func:`bias_clamp` with ``res`` (laid out as ``flat``) added after the bias: each
    element is ``clip((x + bias) + r)``, the separate Add's float32 sum of the biased
    product and the residual, then the clamp (none when lo > hi)."""
    clamp = lo <= hi
    for i in range(rows):
        at = start + i * step
        row = flat[at:at + cols]  # unit stride: vectorises
        other = res[at:at + cols]
        if len(row_bias):
            rb = row_bias[i]
            for j in range(cols):
                row[j] = (row[j] + rb) + other[j]
        elif len(col_bias):
            for j in range(cols):
                row[j] = (row[j] + col_bias[j]) + other[j]
        else:
            for j in range(cols):
                row[j] = row[j] + other[j]
        if clamp:
            for j in range(cols):
                row[j] = clip_value(row[j], lo, hi)

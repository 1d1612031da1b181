"""Activation epilogues applied with the ONNX kernels: what npuc's fused operators
(:mod:`npuc.compiler.ops.fused`) and onnxruntime's FusedConv run after their product.

:class:`Epilogue` is the same work done to one finished tile of a product while it is in
cache (``accumulate.matmul(..., epilogue=...)``, the float32 convolution): a bias added,
then the activation, each element computing what the separate Add and activation
kernels compute for it."""

from __future__ import annotations

import dataclasses

import numpy as np

from . import KernelContext, get_kernel


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
    """Bias, then activation, applied in place to a tile of a product's result.

    ``bias``: None, or an array that broadcasts to the whole result (a row bias of an
    ``m x n`` product has shape ``(m, 1)``, a column bias ``(n,)``; a batched product's
    bias may carry batch axes). ``activation`` and ``params`` are those of the fused
    operators (``""`` for none); ``ctx`` is the node's kernel context, needed only by
    the activations that run through their ONNX kernel (all but Relu and Clip).

    Called as ``epilogue(tile, index, rows, cols)``: ``tile`` is the writable view
    ``result[index][rows, cols]`` (``index`` a tuple over the batch axes, ``rows`` and
    ``cols`` slices of the last two axes) and ``shape`` the whole result's shape; the
    numbers of an element do not depend on the tile it is in.
    """

    bias: np.ndarray | None = None
    activation: str = ""
    params: tuple = ()
    ctx: object = None

    def __bool__(self) -> bool:
        return self.bias is not None or bool(self.activation)

    def __call__(self, tile: np.ndarray, index: tuple, rows: slice, cols: slice,
                 shape: tuple) -> None:
        if self.bias is not None:  # a broadcast view: nothing is copied
            bias = np.broadcast_to(self.bias, shape)[index][rows, cols]
            np.add(tile, bias, out=tile, casting="unsafe")
        self.activate(tile)

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

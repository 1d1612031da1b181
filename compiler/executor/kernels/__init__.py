"""The kernel registry: what each operator means, as code.

A kernel is a function ``fn(inputs, attrs, ctx) -> list[np.ndarray]``:

- ``inputs``: the input arrays in the node's order, ``None`` for an omitted optional input;
- ``attrs``: the node's attributes as plain Python values (int, float, str, lists of
  those, ``np.ndarray`` for tensor attributes, ``npuc.ir.Graph`` for subgraphs). Kernels
  apply the ONNX defaults themselves (``attrs.get("axis", 1)``);
- ``ctx``: a :class:`KernelContext` (opset version, number of outputs, the node for
  messages, a way to run subgraphs).

Kernels are registered per ``(domain, op_type)`` with :func:`kernel`; they follow the ONNX
specification for every opset version the importer accepts (``ctx.opset`` tells which).
Heavy loops are Numba functions compiled lazily (``cache=True``) on first use, so a model
only pays for the operators and dtypes it uses. :func:`get_kernel` imports only the module
that holds an operator's kernel (:mod:`.index`), so a run that needs no Numba kernel does
not load Numba.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from npuc.ir.errors import NpucError

KERNELS: dict[tuple[str, str], Callable] = {}


def kernel(*op_types: str, domain: str = ""):
    """Register the decorated function as the kernel of ``op_types`` in ``domain``."""

    def register(fn):
        for op in op_types:
            KERNELS[(domain, op)] = fn
        return fn

    return register


def in_place(fn):
    """Mark a registered kernel as one that may write its result into a donated input
    (``KernelContext.donated``). Only marked kernels are given donations: a kernel that
    runs other kernels would hand its own positions to inputs they do not name."""
    fn.in_place = True
    return fn


_loaded = False


def load_all() -> None:
    """Import every module of this package once, so that each registers its kernels.

    They are imported on first lookup rather than with the package, so that
    ``npuc --help`` stays fast. npuc's own operators register theirs from
    :mod:`npuc.compiler.ops`, which whoever runs nodes imports."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def get_kernel(op_type: str, domain: str = "", opset: int | None = None) -> Callable | None:
    """The kernel for an operator, or None when npuc has none.

    An ONNX operator that npuc has no kernel for but that onnx defines by a function body
    runs as that body (see ``functions.py``) when ``opset`` is given.
    """
    fn = KERNELS.get((domain, op_type))
    if fn is None:
        _load_for(op_type, domain)
        fn = KERNELS.get((domain, op_type))
    if fn is None and opset is not None and domain in ("", "ai.onnx.ml", "ai.onnx.preview",
                                                        "ai.onnx.preview.training"):
        from .functions import function_kernel, has_function

        if has_function(op_type, domain, opset):
            return function_kernel
    return fn


def _load_for(op_type: str, domain: str) -> None:
    """Import the module that registers ``op_type``'s kernel; all of them when the index
    names none (an operator without a kernel, or one the index does not know yet)."""
    from .index import module_of

    module = module_of(op_type, domain)
    if module is None:
        load_all()
    else:
        importlib.import_module(f"{__name__}.{module}")


def supported_ops() -> list[tuple[str, str]]:
    """Every ``(domain, op_type)`` with a kernel."""
    load_all()
    return sorted(KERNELS)


class ResidualMismatch(NpucError):
    """A residual the run fused into a product (``KernelContext.epilogue``) does not have
    the product's size: a declared shape the data contradicts. Raised before anything is
    written; the interpreter then runs the nodes separately."""


@dataclass
class KernelContext:
    """What a kernel may need beyond its inputs and attributes."""

    opset: int = 21
    num_outputs: int = 1
    node: Any = None  # the npuc.ir.Node being run, for messages
    output_types: list = field(default_factory=list)  # declared output TensorTypes, if known
    # run_graph(graph, {name: array}) -> list of outputs: a subgraph of the node (values
    # of the enclosing graphs visible), or a standalone graph such as a function body
    run_graph: Callable | None = None
    rng: Any = None  # numpy Generator for random operators
    # positions of the inputs whose arrays the kernel may overwrite with its result: the
    # interpreter gives an input whose value dies at this node and whose buffer no other
    # array or object refers to (see ``interpreter._donated``), to kernels marked
    # :func:`in_place` only
    donated: tuple = ()
    # an Epilogue the run fused into this convolution (a residual Add and its activation,
    # see ``executor/fusion.py``): the Conv kernel applies it to its result
    epilogue: Any = None

    def describe(self) -> str:
        return self.node.describe() if self.node is not None else "node"


def reusable(ctx, inputs, position: int, shape, dtype):
    """Input ``position`` when the kernel may write a result of ``shape`` and ``dtype``
    into it (it was donated, is contiguous and has that shape and dtype), else None.

    A kernel writing its result there saves an allocation and the page faults of a fresh
    buffer; its numbers are the same, because numpy's ufuncs compute element by element."""
    if ctx is None or position not in ctx.donated:
        return None
    x = inputs[position]
    if (x is None or x.dtype != dtype or x.shape != tuple(shape)
            or not x.flags.c_contiguous or not x.flags.writeable):
        return None
    return x

"""Prefill that returns the last token's logits only.

A prefill program needs the next token's scores, the logits of the last position; the
other ``s - 1`` rows of ``lm_head`` (``s x hidden x vocab`` multiply-adds and as many
logits written out) are thrown away by every server. :func:`keep_last_token` slices the
hidden states to the last position in front of the product that makes ``logits``
(``[batch, s, vocab]`` becomes ``[batch, 1, vocab]``); the norm before it works per
token, so nothing else changes.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.errors import NpucError

PRODUCTS = {"MatMul", "FusedMatMul", "Gemm", "FusedGemm"}


def keep_last_token(graph, output: str = "logits") -> None:
    """Make ``output`` the last position's logits only (in place)."""
    out = next((v for v in graph.outputs if v.name == output), None)
    if out is None:
        raise NpucError(f"last-token logits: the model has no output named {output!r}")
    node = out.producer
    shape = out.type.shape if out.type is not None else None
    if node is None or node.op_type not in PRODUCTS or shape is None or len(shape) != 3:
        raise NpucError(f"last-token logits: {output} is not a [batch, tokens, vocab] "
                        "product of the hidden states and lm_head")
    if shape[1] == 1:
        return
    x = node.inputs[0]
    i64 = np.int64
    consts = [graph.add_constant(None, np.asarray(a, i64))
              for a in ([-1], [np.iinfo(i64).max], [1])]
    xs = x.type.shape
    cut = graph.create_node("Slice", [x, *consts],
                            [(f"{x.name}_last", x.type.with_shape((xs[0], 1, xs[2])))],
                            name=f"{node.name}/last_token", before=node)
    node.set_input(0, cut.outputs[0])
    out.type = out.type.with_shape((shape[0], 1, shape[2]))

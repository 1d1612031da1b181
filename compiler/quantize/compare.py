"""Layer-by-layer comparison of float and quantized activations.

The float graph (as prepared for quantization, BatchNormalization folded) and the
quantized graph run on the same inputs; every activation that exists in both (int8
values are dequantized with their own scale and zero point) is compared:

- SQNR: ``10 log10(sum(f**2) / sum((f - q)**2))`` in dB (higher is better; each int8
  rounding of a well-used range gives about 40 dB, and errors add up along the network);
- cosine similarity of the flattened tensors.

``loss`` is how many dB a layer loses against the worst of its inputs: the sensitivity
analysis keeps the layers with the largest loss in float.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npuc.ir.errors import NpucError
from npuc.ir.graph import Graph

from .params import dequantize_value


@dataclass
class Row:
    """One compared activation."""

    value: str
    op: str
    node: str
    sqnr: float
    cosine: float
    loss: float | None = None


def sqnr(f: np.ndarray, q: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of ``q`` against ``f``, in dB."""
    f = np.asarray(f, np.float64).ravel()
    q = np.asarray(q, np.float64).ravel()
    noise = np.sum((f - q) ** 2)
    signal = np.sum(f ** 2)
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("-inf")
    return float(10 * np.log10(signal / noise))


def cosine(f: np.ndarray, q: np.ndarray) -> float:
    f = np.asarray(f, np.float64).ravel()
    q = np.asarray(q, np.float64).ravel()
    d = np.linalg.norm(f) * np.linalg.norm(q)
    return float(f @ q / d) if d else 1.0


def _run_with(graph: Graph, names: list[str], feeds: dict, products: str = "float64") -> dict:
    from npuc.compiler.executor.interpreter import execute
    from npuc.compiler.mapped import release_inputs

    probe = graph.copy()
    by_name = {v.name: v for v in probe.values()}
    for n in names:
        v = by_name.get(n)
        if v is not None and v not in probe.outputs and v.const is None:
            probe.outputs.append(v)
    return execute(probe, feeds, observe=release_inputs, products=products)


def layer_report(quantized: Graph, batches, float_graph: Graph | None = None) -> list[Row]:
    """Rows for every activation of the quantized graph's float original, in order."""
    meta = quantized.meta.get("quantize")
    if meta is None and float_graph is None:
        raise NpucError("the graph carries no quantization record; pass float_graph")
    fg = float_graph if float_graph is not None else meta["float_graph"]
    mapping = dict(meta["map"]) if meta else {}
    qvals = {v.name: v for v in quantized.values()}
    fnames = [v.name for v in fg.values() if v.const is None and v.type is not None
              and getattr(v.type, "dtype", None) is not None and v.type.dtype.kind == "float"]
    # same-named float values (fp8/bf16 graphs, boundaries), then int8 twins
    pairs = {n: n for n in fnames if n in qvals and qvals[n].type.dtype.kind == "float"}
    pairs.update({f: q for q, f in mapping.items() if q in qvals})
    acc: dict[str, list] = {}
    for feeds in batches:
        fenv = _run_with(fg, list(pairs), feeds)
        qenv = _run_with(quantized, list(pairs.values()), feeds)
        for f, q in pairs.items():
            if f not in fenv or q not in qenv:
                continue
            qv = qenv[q]
            quant = qvals[q].type.quant
            if quant is not None:
                qv = dequantize_value(qv, quant)
            acc.setdefault(f, []).append((fenv[f], qv))
    rows, by_value = [], {}
    for v in fg.values():
        if v.name not in acc:
            continue
        f = np.concatenate([a.ravel() for a, _ in acc[v.name]])
        q = np.concatenate([b.ravel() for _, b in acc[v.name]])
        p = v.producer
        row = Row(v.name, p.op_type if p else "input", p.name if p else "", sqnr(f, q),
                  cosine(f, q))
        if p is not None:
            ins = [by_value[i.name].sqnr for i in p.inputs if i is not None and i.name in by_value]
            if ins:
                row.loss = min(ins) - row.sqnr if np.isfinite(min(ins)) else None
        by_value[v.name] = row
        rows.append(row)
    return rows


def report(quantized: Graph, inputs, float_graph: Graph | None = None) -> list[Row]:
    """Layer-by-layer SQNR and cosine similarity; ``inputs`` is one input dict or a list."""
    batches = [inputs] if isinstance(inputs, dict) else list(inputs)
    return layer_report(quantized, batches, float_graph)


def format_report(rows: list[Row]) -> str:
    """The rows as a text table."""
    lines = [f"{'value':<48} {'op':<20} {'SQNR dB':>8} {'cosine':>8}"]
    for r in rows:
        lines.append(f"{r.value[-48:]:<48} {r.op:<20} {r.sqnr:8.2f} {r.cosine:8.5f}")
    return "\n".join(lines)

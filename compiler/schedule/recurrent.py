"""LSTM, GRU and RNN as MatMul and elementwise steps, so that an NPU can run them.

No chip here has a recurrent unit; each has a MAC array and a vector unit. Once the
shapes are fixed the sequence length is known, and a recurrent node becomes:

- one MatMul of the whole input sequence by the input weights (all gates, all steps),
  plus the biases of both weight sets;
- per step: a Gather of that step's row, a MatMul of the hidden state by the recurrent
  weights, Slices into the gates, and the gate arithmetic (Sigmoid, Tanh, Mul, Add);
- the outputs assembled by Concat and Reshape, as ONNX lays them out.

Each of those is placed on the NPU or the CPU by the chip's operator table, one by one,
like any other node. A recurrent node is kept whole (and placed on the CPU, with the
reason in the decision log) when unrolling it would not be exact or not pay: a sequence
length only known at run time, ``sequence_lens`` that are not all the full length, more
than :data:`MAX_STEPS` steps, peepholes, clipping, batch-first layout or activations
other than the defaults.
"""

from __future__ import annotations

import numpy as np

from npuc.ir.decisions import log_of
from npuc.ir.types import TensorType

MAX_STEPS = 128
DEFAULT_ACTIVATIONS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"],
                       "RNN": ["tanh"]}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def unroll_recurrent(graph) -> int:
    """Unroll every LSTM, GRU and RNN of ``graph`` that can be; the number unrolled."""
    count = 0
    for node in list(graph.nodes):
        if node.op_type not in GATES or node.domain not in ("", "ai.onnx"):
            continue
        why = _refusal(node)
        if why is not None:
            log_of(graph).record("prepare", node.name or node.op_type, "kept whole", why)
            continue
        _unroll(graph, node)
        count += 1
    return count


def _const(v):
    return None if v is None else v.const


def _refusal(node) -> str | None:
    """Why ``node`` is not unrolled, or None."""
    a = node.attrs
    x = node.inputs[0].type
    if not (isinstance(x, TensorType) and x.is_static and len(x.shape) == 3):
        return "its input's shape is only known at run time"
    if a.get("layout", 0) != 0:
        return "batch-first layout (layout=1) is not unrolled"
    if a.get("clip") is not None:
        return "clipping of the gates is not unrolled"
    if a.get("input_forget", 0):
        return "coupled input and forget gates are not unrolled"
    acts = [str(s).lower() for s in a.get("activations", [])]
    dirs = 2 if a.get("direction", "forward") == "bidirectional" else 1
    if acts and acts != DEFAULT_ACTIVATIONS[node.op_type] * dirs:
        return f"activations {acts} other than the defaults are not unrolled"
    if any(node.input(i) is not None and _const(node.input(i)) is None for i in (1, 2, 3)):
        return "its weights are not constants"
    steps = x.shape[0]
    lens = node.input(4)
    if lens is not None and (lens.const is None or np.any(lens.const != steps)):
        return "sequence_lens shorter than the sequence are not unrolled"
    if node.op_type == "LSTM" and node.input(7) is not None and \
            (lens := _const(node.input(7))) is not None and np.any(lens != 0):
        return "peephole connections are not unrolled"
    if steps > MAX_STEPS:
        return f"its {steps} steps are more than the {MAX_STEPS} npuc unrolls"
    return None


class _Emit:
    """Creates the unrolled nodes before the recurrent one, named after it."""

    def __init__(self, graph, node):
        self.graph, self.before, self.dtype = graph, node, node.inputs[0].type.dtype
        self.prefix = node.name or node.op_type
        self.k = 0

    def const(self, array):
        return self.graph.add_constant(None, np.array(array, order="C"))  # 0-d stays 0-d

    def op(self, op_type, inputs, shape, dtype=None, **attrs):
        self.k += 1
        name = f"{self.prefix}/{op_type.lower()}{self.k}"
        t = TensorType(dtype or self.dtype, tuple(shape))
        node = self.graph.create_node(op_type, inputs, [(name, t)], attrs, name=name,
                                      before=self.before)
        return node.outputs[0]

    def act(self, kind, x, shape):
        return self.op({"sigmoid": "Sigmoid", "tanh": "Tanh"}[kind], [x], shape)

    def reshape(self, x, shape):
        return self.op("Reshape", [x, self.const(np.array(shape, np.int64))], shape)


def _unroll(graph, node) -> None:
    steps, batch, _ = node.inputs[0].type.shape
    hidden = int(node.attrs["hidden_size"]) if "hidden_size" in node.attrs else \
        node.inputs[2].const.shape[-1]
    direction = node.attrs.get("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    e = _Emit(graph, node)
    ys, hs, cs = [], [], []
    for d in range(dirs):
        reverse = direction == "reverse" or d == 1
        y, h, c = _direction(e, node, d, reverse, steps, batch, hidden)
        ys.append(e.reshape(y, [steps, 1, batch, hidden]))
        hs.append(e.reshape(h, [1, batch, hidden]))
        if c is not None:
            cs.append(e.reshape(c, [1, batch, hidden]))

    def join(parts, axis, shape):
        return parts[0] if len(parts) == 1 else e.op("Concat", parts, shape, axis=axis)

    results = [join(ys, 1, [steps, dirs, batch, hidden]), join(hs, 0, [dirs, batch, hidden])]
    if node.op_type == "LSTM":
        results.append(join(cs, 0, [dirs, batch, hidden]))
    for old, new in zip(node.outputs, results):
        if old is not None:
            _rebind(graph, old, new)
    log_of(graph).record(
        "prepare", node.name or node.op_type, "unrolled",
        f"{node.op_type} of {steps} steps becomes one MatMul over the sequence and, per "
        "step, a MatMul and elementwise gate arithmetic, each placed by the chip's operator "
        "table")
    graph.remove_node(node)


def _direction(e, node, d, reverse, steps, batch, hidden):
    """One direction: ``(Y as [steps, batch, hidden], last H, last C or None)``."""
    kind, gates = node.op_type, GATES[node.op_type]
    w, r = node.inputs[1].const[d], node.inputs[2].const[d]
    bias = _const(node.input(3))
    bias = np.zeros(2 * gates * hidden, w.dtype) if bias is None else bias[d]
    wb, rb = bias[:gates * hidden], bias[gates * hidden:]
    acts = [str(s).lower() for s in node.attrs.get("activations", [])] or \
        DEFAULT_ACTIVATIONS[kind] * 2
    acts = acts[d * len(DEFAULT_ACTIVATIONS[kind]):(d + 1) * len(DEFAULT_ACTIVATIONS[kind])]
    x = node.inputs[0]
    width = x.type.shape[2]
    flat = e.reshape(x, [steps * batch, width])
    # GRU's hidden gate adds its recurrent bias inside the reset product: kept apart
    fold = wb + rb if kind != "GRU" else np.concatenate([wb[:2 * hidden] + rb[:2 * hidden],
                                                         wb[2 * hidden:]])
    xw = e.op("MatMul", [flat, e.const(w.T)], [steps * batch, gates * hidden])
    xw = e.op("Add", [xw, e.const(fold.astype(w.dtype))], [steps * batch, gates * hidden])
    xw = e.reshape(xw, [steps, batch, gates * hidden])
    h = _initial(e, node, 5, d, batch, hidden, w.dtype)
    c = _initial(e, node, 6, d, batch, hidden, w.dtype) if kind == "LSTM" else None
    rt = e.const(r.T)
    out = [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        xt = e.op("Gather", [xw, e.const(np.array(t, np.int64))], [batch, gates * hidden],
                  axis=0)
        if kind == "GRU":
            h = _gru_step(e, node, xt, h, r, rb, acts, batch, hidden)
        else:
            g = e.op("Add", [xt, e.op("MatMul", [h, rt], [batch, gates * hidden])],
                     [batch, gates * hidden])
            if kind == "RNN":
                h = e.act(acts[0], g, [batch, hidden])
            else:
                h, c = _lstm_step(e, g, c, acts, batch, hidden)
        out[t] = e.reshape(h, [1, batch, hidden])
    y = out[0] if steps == 1 else e.op("Concat", out, [steps, batch, hidden], axis=0)
    return y, h, c


def _initial(e, node, index, d, batch, hidden, dtype):
    v = node.input(index)
    if v is None:
        return e.const(np.zeros((batch, hidden), dtype))
    return e.op("Gather", [v, e.const(np.array(d, np.int64))], [batch, hidden], axis=0)


def _gate(e, g, k, batch, hidden):
    """Slice ``k`` of the gates (ONNX orders them i, o, f, c for LSTM; z, r, h for GRU)."""
    return e.op("Slice", [g, e.const(np.array([k * hidden], np.int64)),
                          e.const(np.array([(k + 1) * hidden], np.int64)),
                          e.const(np.array([1], np.int64))], [batch, hidden])


def _lstm_step(e, g, c, acts, batch, hidden):
    shape = [batch, hidden]
    i = e.act(acts[0], _gate(e, g, 0, batch, hidden), shape)
    o = e.act(acts[0], _gate(e, g, 1, batch, hidden), shape)
    f = e.act(acts[0], _gate(e, g, 2, batch, hidden), shape)
    cand = e.act(acts[1], _gate(e, g, 3, batch, hidden), shape)
    c = e.op("Add", [e.op("Mul", [f, c], shape), e.op("Mul", [i, cand], shape)], shape)
    h = e.op("Mul", [o, e.act(acts[2], c, shape)], shape)
    return h, c


def _gru_step(e, node, xt, h, r, rb, acts, batch, hidden):
    shape = [batch, hidden]
    zr = e.op("MatMul", [h, e.const(r[:2 * hidden].T)], [batch, 2 * hidden])
    z = e.act(acts[0], e.op("Add", [_gate(e, xt, 0, batch, hidden),
                                    _gate(e, zr, 0, batch, hidden)], shape), shape)
    rg = e.act(acts[0], e.op("Add", [_gate(e, xt, 1, batch, hidden),
                                     _gate(e, zr, 1, batch, hidden)], shape), shape)
    rh, bh = e.const(r[2 * hidden:].T), e.const(rb[2 * hidden:])
    if node.attrs.get("linear_before_reset", 0):
        inner = e.op("Add", [e.op("MatMul", [h, rh], shape), bh], shape)
        inner = e.op("Mul", [rg, inner], shape)
    else:
        inner = e.op("Add", [e.op("MatMul", [e.op("Mul", [rg, h], shape), rh], shape), bh],
                     shape)
    cand = e.act(acts[1], e.op("Add", [_gate(e, xt, 2, batch, hidden), inner], shape), shape)
    # H = (1 - z) * cand + z * h = cand + z * (h - cand)
    return e.op("Add", [cand, e.op("Mul", [z, e.op("Sub", [h, cand], shape)], shape)], shape)


def _rebind(graph, old, new) -> None:
    """Let ``new`` stand for ``old``; a graph output keeps its name through an Identity."""
    if not any(o is old for o in graph.outputs):
        old.replace_all_uses_with(new)
        return
    producer = old.producer
    ident = graph.create_node("Identity", [new], [("t", old.type)],
                              name=f"{producer.name or producer.op_type}_{old.name}",
                              before=producer)
    graph.release_name(ident.outputs[0].name)
    ident.outputs[0] = old
    producer.outputs[old.index] = None
    old.producer, old.index = ident, 0

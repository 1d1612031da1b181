"""The int8 rules of elementwise operators and data movement (see :mod:`.rules`).

- Add, Sub, Mul, Div of two tensors: in :mod:`.rules_arith`; with a scalar constant, a
  table (below).
- Elementwise functions of one int8 tensor (and scalar constants): a 256-entry table,
  computed by running the operator's own float kernel on the 256 input levels; a chain
  of them becomes one table, and so does a sum or product of functions of the same
  tensor (a decomposed HardSwish or SiLU: ``x * clip(x + 3, 0, 6) / 6``).
- Data movement (MaxPool, Reshape, Transpose, Gather, Split, ...): the same operator on
  int8 data, at the input's scale and zero point.
- Concat: inputs requantized to the output's scale where they differ.

Each applies only when its inputs are int8 already, so a lone float island never pays a
round trip.
"""

from __future__ import annotations

import numpy as np

from npuc.compiler.executor.interpreter import evaluate

from .epilogue import _out_type
from .fixedpoint import quantize_multiplier
from .params import quantize_value


def _as_function(rw, v):
    """``(source, fn)``: the int8 value an int8 tensor ``v`` is an elementwise function
    of, and that function on float values; a table reads its source, anything else is
    its own source. None when ``v`` has no int8 twin."""
    q = rw.available(v)
    if q is None:
        return None
    p = q.producer
    if p is not None and p.op_type == "Lut" and p.domain == "npuc" and "fn" in p.meta:
        return p.inputs[0], p.meta["fn"]
    return q, None


def one_source(rw, node) -> bool:
    """Whether every data input of ``node`` is an elementwise function of one int8
    tensor (``x * sigmoid(x)``, ``x * clip(x + 3, 0, 6)``, ``x * x``): one table then."""
    data = [v for v in node.inputs if v is not None and v.const is None]
    if len(data) < 2 or any(c.const.size != 1 for c in node.inputs
                            if c is not None and c.const is not None):
        return False
    found = [_as_function(rw, v) for v in data]
    return all(f is not None for f in found) and len({id(f[0]) for f in found}) == 1


def _compose(node, attrs, opset, args):
    """The float function of the source: ``node``'s operator (kept after the node is
    gone) applied to the data inputs' own functions (None: the source itself) and the
    constants."""
    def fn(t):
        ins = [(t if f is None else f(t)) if is_data else c for is_data, f, c in args]
        return np.asarray(evaluate(node, ins, attrs, opset, [None], 1)[0],
                          dtype=np.float32).reshape(-1)
    return fn


def lut(rw, node):
    """An elementwise function of one int8 tensor as a 256-entry table: the node and the
    tables before it (even those read elsewhere, and both sides of a product or sum of
    functions of the same tensor) computed in float on the source's 256 levels, so the
    values between them are never rounded."""
    data = [v for v in node.inputs if v is not None and v.const is None]
    consts = [v for v in node.inputs if v is not None and v.const is not None]
    if not data or any(c.const.size != 1 for c in consts) or len(node.outputs) != 1:
        return "not an elementwise function of one tensor"
    found = [_as_function(rw, v) for v in data]
    if any(f is None for f in found):
        return "its input is not int8"
    if len({id(f[0]) for f in found}) != 1:
        return "not an elementwise function of one tensor"
    source = found[0][0]
    y = node.outputs[0]
    qy = rw.act.get(y.name)
    if qy is None:
        return "no calibration range for its output"
    of = {id(v): f for v, (_, f) in zip(data, found)}
    args = [(v is not None and v.const is None, of.get(id(v)),
             None if v is None else v.const) for v in node.inputs]
    fn = _compose(node, dict(node.attrs), rw.graph.opset_of("") or 17, args)
    levels = np.arange(-128, 128, dtype=np.int32)
    t = (levels - int(source.type.quant.zero_point)).astype(np.float32) * \
        np.float32(source.type.quant.scale)
    table = quantize_value(fn(t), qy)
    name = node.name or y.name
    new = rw.node("Lut", [source, rw.const(f"{name}_table", table)],
                  (f"{y.name}_q", _out_type(y, qy)),
                  {"y_scale": float(qy.scale), "y_zero_point": int(qy.zero_point)},
                  before=node, name=name)
    new.meta["fn"] = fn
    rw.replace(node, new.outputs[0], y)


def passthrough(rw, node):
    """Data movement: the same operator on the int8 data, same scale and zero point."""
    qx = rw.available(node.input(0))
    if qx is None:
        return "its input is not int8"
    if len([o for o in node.outputs if o is not None]) != 1:
        return "more than one output"
    y = node.outputs[0]
    new = rw.node(node.op_type, [qx, *node.inputs[1:]],
                  (f"{y.name}_q", _out_type(y, qx.type.quant)), dict(node.attrs), before=node,
                  domain="", name=node.name)
    rw.replace(node, new.outputs[0], y)


def split(rw, node):
    """Split: every part is int8 data at the input's scale and zero point (a part nobody
    reads stays an int8 output of the new Split)."""
    qx = rw.available(node.input(0))
    if qx is None:
        return "its input is not int8"
    q = qx.type.quant
    outs = [None if o is None else (f"{o.name}_q", _out_type(o, q)) for o in node.outputs]
    new = rw.graph.create_node("Split", [qx, *node.inputs[1:]], outs, dict(node.attrs),
                               name=node.name, before=node)
    rw.ours.add(id(new))
    rw.replace_outputs(node, new.outputs, node.outputs)


def concat(rw, node):
    twins = [rw.available(v) for v in node.inputs]
    if any(t is None for t in twins):
        return "its inputs are not all int8"
    y = node.outputs[0]
    qy = rw.act.get(y.name)
    if qy is None:
        return "no calibration range for its output"
    ins = []
    for t in twins:
        q = t.type.quant
        if q == qy:
            ins.append(t)
            continue
        m = quantize_multiplier(float(q.scale) / float(qy.scale))
        r = rw.node("Requantize", [t], (f"{t.name}_rq", _out_type(t, qy)),
                    {"x_zero_point": int(q.zero_point), "multiplier": m[0], "shift": m[1],
                     "y_scale": float(qy.scale), "y_zero_point": int(qy.zero_point)},
                    before=node)
        ins.append(r.outputs[0])
    new = rw.node("Concat", ins, (f"{y.name}_q", _out_type(y, qy)), dict(node.attrs),
                  before=node, domain="", name=node.name)
    rw.replace(node, new.outputs[0], y)


LUT_OPS = ["Relu", "Clip", "Sigmoid", "Tanh", "Erf", "Exp", "Log", "Sqrt", "Reciprocal",
           "Neg", "Abs", "LeakyRelu", "HardSigmoid", "HardSwish", "Softplus", "Softsign",
           "Elu", "Selu", "Celu", "Gelu", "Mish", "ThresholdedRelu", "Sub", "Div", "Pow",
           "Max", "Min"]
PASS_OPS = ["MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity",
            "Slice", "DepthToSpace", "SpaceToDepth", "Expand", "GlobalMaxPool", "Gather"]

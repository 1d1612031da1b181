"""Control flow: If, Loop, Scan and SequenceMap run their subgraphs through
``ctx.run_graph``."""

from __future__ import annotations

import numpy as np

from npuc.ir.errors import NpucError
from npuc.ir.limits import check_iterations

from . import kernel


@kernel("If")
def if_(inputs, attrs, ctx):
    cond = np.asarray(inputs[0])
    if cond.size != 1:
        raise NpucError(f"{ctx.describe()}: the condition must hold one value, got shape "
                        f"{list(cond.shape)}")
    branch = attrs["then_branch"] if bool(cond.reshape(-1)[0]) else attrs["else_branch"]
    return ctx.run_graph(branch, {})


@kernel("Loop")
def loop(inputs, attrs, ctx):
    body = attrs["body"]
    max_trip = inputs[0] if len(inputs) > 0 else None
    cond = inputs[1] if len(inputs) > 1 else None
    carried = list(inputs[2:])
    n_carried = len(carried)
    trip_limit = None if max_trip is None else int(np.asarray(max_trip).reshape(-1)[0])
    keep_going = True if cond is None else bool(np.asarray(cond).reshape(-1)[0])
    names = [v.name for v in body.inputs]
    scans: list[list] = [[] for _ in range(len(body.outputs) - 1 - n_carried)]
    i = 0
    while keep_going and (trip_limit is None or i < trip_limit):
        check_iterations(i + 1, ctx.describe())
        feeds = {names[0]: np.array(i, dtype=np.int64),
                 names[1]: np.array(keep_going, dtype=bool)}
        for name, value in zip(names[2:], carried):
            feeds[name] = value
        outs = ctx.run_graph(body, feeds)
        keep_going = bool(np.asarray(outs[0]).reshape(-1)[0])
        carried = list(outs[1:1 + n_carried])
        for k, value in enumerate(outs[1 + n_carried:]):
            scans[k].append(value)
        i += 1
        if trip_limit is None and cond is None:
            raise NpucError(f"{ctx.describe()}: a Loop with neither a trip count nor a "
                            "condition would never end")
    results = list(carried)
    for k, values in enumerate(scans):
        if values:
            results.append(np.stack(values))
        else:
            t = ctx.output_types[n_carried + k] if len(ctx.output_types) > n_carried + k \
                else None
            dt = t.dtype.numpy if t is not None and hasattr(t, "dtype") else np.float32
            results.append(np.zeros((0,), dtype=dt))
    return results


@kernel("Scan")
def scan(inputs, attrs, ctx):
    body = attrs["body"]
    n_scan = int(attrs["num_scan_inputs"])
    if ctx.opset < 9:
        return _scan8(inputs, attrs, ctx)
    n_state = len(inputs) - n_scan
    state = list(inputs[:n_state])
    scan_in = list(inputs[n_state:])
    in_axes = attrs.get("scan_input_axes", [0] * n_scan)
    in_dirs = attrs.get("scan_input_directions", [0] * n_scan)
    n_out_scan = len(body.outputs) - n_state
    out_axes = attrs.get("scan_output_axes", [0] * n_out_scan)
    out_dirs = attrs.get("scan_output_directions", [0] * n_out_scan)
    seqs = []
    for x, axis, direction in zip(scan_in, in_axes, in_dirs):
        axis = axis % x.ndim
        x = np.moveaxis(x, axis, 0)
        seqs.append(x[::-1] if direction else x)
    length = seqs[0].shape[0] if seqs else 0
    names = [v.name for v in body.inputs]
    collected: list[list] = [[] for _ in range(n_out_scan)]
    for t in range(length):
        feeds = dict(zip(names[:n_state], state))
        for name, s in zip(names[n_state:], seqs):
            feeds[name] = s[t]
        outs = ctx.run_graph(body, feeds)
        state = list(outs[:n_state])
        for k, value in enumerate(outs[n_state:]):
            collected[k].append(value)
    results = list(state)
    for values, axis, direction in zip(collected, out_axes, out_dirs):
        if direction:
            values = values[::-1]
        stacked = np.stack(values)
        axis = axis % stacked.ndim
        results.append(np.moveaxis(stacked, 0, axis))
    return results


def _scan8(inputs, attrs, ctx):
    """Scan-8: a leading optional ``sequence_lens`` input, then the states and the scan
    inputs, all with a batch axis first (scan inputs are (batch, sequence, ...)). Each
    batch entry is scanned on its own, over its own length; scan outputs past a shorter
    sequence stay zero."""
    body = attrs["body"]
    n_scan = int(attrs["num_scan_inputs"])
    lens, rest = inputs[0], list(inputs[1:])
    n_state = len(rest) - n_scan
    states, scan_in = rest[:n_state], rest[n_state:]
    dirs = attrs.get("directions", [0] * n_scan)
    batch = (states or scan_in)[0].shape[0]
    full = scan_in[0].shape[1] if scan_in else 0
    lengths = [full] * batch if lens is None or np.asarray(lens).size == 0 \
        else [int(v) for v in np.asarray(lens).reshape(-1)]
    names = [v.name for v in body.inputs]
    final: list[list] = [[] for _ in range(n_state)]
    collected: list[list] = []  # per batch entry, per scan output: the values in order
    for b in range(batch):
        state = [s[b] for s in states]
        seqs = [x[b, :lengths[b]][::-1] if d else x[b, :lengths[b]]
                for x, d in zip(scan_in, dirs)]
        outs_b: list[list] = [[] for _ in range(len(body.outputs) - n_state)]
        for t in range(lengths[b]):
            feeds = dict(zip(names[:n_state], state))
            feeds.update((name, s[t]) for name, s in zip(names[n_state:], seqs))
            outs = ctx.run_graph(body, feeds)
            state = list(outs[:n_state])
            for k, value in enumerate(outs[n_state:]):
                outs_b[k].append(value)
        for k, value in enumerate(state):
            final[k].append(value)
        collected.append(outs_b)
    results = [np.stack(values) for values in final]
    for k in range(len(body.outputs) - n_state):
        first = next((c[k][0] for c in collected if c[k]), None)
        if first is None:
            raise NpucError(f"{ctx.describe()}: every sequence is empty")
        out = np.zeros((batch, full) + first.shape, dtype=first.dtype)
        for b, c in enumerate(collected):
            if c[k]:
                out[b, :len(c[k])] = np.stack(c[k])
        results.append(out)
    return results


@kernel("SequenceMap")
def sequence_map(inputs, attrs, ctx):
    """Run the body once per position of the input sequences; a tensor input is passed
    unchanged to every call. Each body output becomes a sequence."""
    body = attrs["body"]
    names = [v.name for v in body.inputs]
    lengths = {len(x) for x in inputs if isinstance(x, list)}
    if len(lengths) > 1:
        raise NpucError(f"{ctx.describe()}: the input sequences differ in length "
                        f"({sorted(lengths)})")
    length = lengths.pop() if lengths else 0
    results: list[list] = [[] for _ in body.outputs]
    for i in range(length):
        feeds = {name: x[i] if isinstance(x, list) else x for name, x in zip(names, inputs)}
        for k, value in enumerate(ctx.run_graph(body, feeds)):
            results[k].append(value)
    return results

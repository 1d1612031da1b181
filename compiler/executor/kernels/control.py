"""Control flow: If, Loop and Scan run their subgraphs through ``ctx.run_graph``."""

from __future__ import annotations

import numpy as np

from npuc.ir.errors import NpucError

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
    opset = ctx.opset
    if opset < 9:  # Scan-8 has a leading optional sequence_lens input and batch axis
        raise NpucError(f"{ctx.describe()}: Scan before opset 9 is not supported")
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

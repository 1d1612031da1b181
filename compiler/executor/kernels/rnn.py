"""Recurrent layers: RNN, GRU, LSTM.

One step function per cell; the input projection of every time step is a single matrix
product up front, so the sequential loop only multiplies by the recurrence weights.
Directions run separately (the reverse direction reads each sequence backwards from its
own length); steps past a batch entry's ``sequence_lens`` keep its state and output zero.
"""

from __future__ import annotations

import numpy as np

from . import kernel
from .accumulate import matmul as _mm
from .checks import accepts, unsupported


def _activation(name, alpha, beta):
    name = name.lower()
    table = {
        "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "tanh": np.tanh,
        "relu": lambda x: np.maximum(x, 0),
        "affine": lambda x: alpha * x + beta,
        "leakyrelu": lambda x: np.where(x >= 0, x, alpha * x),
        "thresholdedrelu": lambda x: np.where(x > alpha, x, 0),
        "scaledtanh": lambda x: alpha * np.tanh(beta * x),
        "hardsigmoid": lambda x: np.clip(alpha * x + beta, 0, 1),
        "elu": lambda x: np.where(x >= 0, x, alpha * (np.exp(x) - 1)),
        "softsign": lambda x: x / (1 + np.abs(x)),
        "softplus": lambda x: np.log1p(np.exp(x)),
    }
    return table.get(name)


_DEFAULT_ALPHA = {"leakyrelu": 0.01, "thresholdedrelu": 1.0, "hardsigmoid": 0.2, "elu": 1.0}
_DEFAULT_BETA = {"hardsigmoid": 0.5}


def _activations(attrs, defaults, dirs, ctx):
    names = attrs.get("activations") or defaults * dirs
    alphas = list(attrs.get("activation_alpha") or [])
    betas = list(attrs.get("activation_beta") or [])
    fns = []
    for i, name in enumerate(names):
        a = alphas[i] if i < len(alphas) else _DEFAULT_ALPHA.get(name.lower(), 1.0)
        b = betas[i] if i < len(betas) else _DEFAULT_BETA.get(name.lower(), 0.0)
        fn = _activation(name, a, b)
        if fn is None:
            raise unsupported(ctx, f"activation {name!r}")
        fns.append(fn)
    per = len(defaults)
    return [fns[d * per:(d + 1) * per] for d in range(dirs)]


def _run(cell, inputs, attrs, ctx, gates, defaults):
    x, w, r = inputs[:3]
    opt = (list(inputs[3:]) + [None] * 5)[:5]
    b, seq_lens, h0 = opt[0], opt[1], opt[2]
    c0 = opt[3] if cell == "lstm" else None
    peep = opt[4] if cell == "lstm" else None
    layout = attrs.get("layout", 0)
    if layout:
        x = x.transpose(1, 0, 2)
        h0 = h0.transpose(1, 0, 2) if h0 is not None else None
        c0 = c0.transpose(1, 0, 2) if c0 is not None else None
    direction = attrs.get("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    seq, batch = x.shape[:2]
    hid = attrs.get("hidden_size") or r.shape[-1]
    acts = _activations(attrs, defaults, dirs, ctx)
    clip = attrs.get("clip")
    lens = seq_lens.astype(np.int64) if seq_lens is not None else np.full(batch, seq)
    y = np.zeros((seq, dirs, batch, hid), dtype=x.dtype)
    yh = np.zeros((dirs, batch, hid), dtype=x.dtype)
    yc = np.zeros((dirs, batch, hid), dtype=x.dtype)
    for d in range(dirs):
        reverse = direction == "reverse" or d == 1
        bias = b[d] if b is not None else np.zeros(2 * gates * hid, dtype=x.dtype)
        wb, rb = bias[:gates * hid], bias[gates * hid:]
        xp = _mm(x, w[d].T) + wb  # (seq, batch, gates*hid)
        h = h0[d].copy() if h0 is not None else np.zeros((batch, hid), dtype=x.dtype)
        c = c0[d].copy() if c0 is not None else np.zeros((batch, hid), dtype=x.dtype)
        p = peep[d] if peep is not None else np.zeros(3 * hid, dtype=x.dtype)
        for step in range(seq):
            t = np.where(lens - 1 - step >= 0, lens - 1 - step, 0) if reverse else np.full(batch, step)
            live = (step < lens)[:, None]
            xt = xp[t, np.arange(batch)]
            if cell == "rnn":
                pre = xt + _mm(h, r[d].T) + rb
                if clip:
                    pre = np.clip(pre, -clip, clip)
                hn, cn = acts[d][0](pre), c
            elif cell == "gru":
                lbr = attrs.get("linear_before_reset", 0)
                hn, cn = _gru_step(xt, h, r[d], rb, hid, acts[d], clip, lbr), c
            else:
                hn, cn = _lstm_step(xt, h, c, r[d], rb, p, hid, acts[d], clip, attrs.get("input_forget", 0))
            h = np.where(live, hn, h)
            c = np.where(live, cn, c)
            y[t, d, np.arange(batch)] = np.where(live, hn, 0)
        yh[d], yc[d] = h, c
    if layout:
        y, yh, yc = y.transpose(2, 0, 1, 3), yh.transpose(1, 0, 2), yc.transpose(1, 0, 2)
    return [y, yh, yc][:ctx.num_outputs]


def _gru_step(xt, h, r, rb, hid, act, clip, linear_before_reset):
    f, g = act[0], act[1]
    rz, rr, rh = r[:hid], r[hid:2 * hid], r[2 * hid:]
    bz, br, bh = rb[:hid], rb[hid:2 * hid], rb[2 * hid:]
    xz, xr, xh = xt[:, :hid], xt[:, hid:2 * hid], xt[:, 2 * hid:]

    def cl(v):
        return np.clip(v, -clip, clip) if clip else v

    z = f(cl(xz + _mm(h, rz.T) + bz))
    rg = f(cl(xr + _mm(h, rr.T) + br))
    if linear_before_reset:
        ht = g(cl(xh + rg * (_mm(h, rh.T) + bh)))
    else:
        ht = g(cl(xh + _mm(rg * h, rh.T) + bh))
    return (1 - z) * ht + z * h


def _lstm_step(xt, h, c, r, rb, p, hid, act, clip, input_forget):
    f, g, hact = act
    pre = xt + _mm(h, r.T) + rb
    if clip:
        pre = np.clip(pre, -clip, clip)
    pi, po, pf = p[:hid], p[hid:2 * hid], p[2 * hid:]
    i = f(pre[:, :hid] + pi * c)
    fg = 1 - i if input_forget else f(pre[:, 2 * hid:3 * hid] + pf * c)
    ct = g(pre[:, 3 * hid:])
    cn = fg * c + i * ct
    o = f(pre[:, hid:2 * hid] + po * cn)
    return o * hact(cn), cn


@kernel("RNN")
@accepts("float")
def rnn(inputs, attrs, ctx):
    return _run("rnn", inputs, attrs, ctx, 1, ["Tanh"])


@kernel("GRU")
@accepts("float")
def gru(inputs, attrs, ctx):
    return _run("gru", inputs, attrs, ctx, 3, ["Sigmoid", "Tanh"])


@kernel("LSTM")
@accepts("float")
def lstm(inputs, attrs, ctx):
    return _run("lstm", inputs, attrs, ctx, 4, ["Sigmoid", "Tanh", "Tanh"])

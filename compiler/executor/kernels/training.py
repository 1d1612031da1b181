"""Optimizer steps from the ai.onnx.preview.training domain: Adagrad, Adam, Momentum.

Each node updates one or more tensors in one call: inputs are the learning rate ``R``
and step count ``T``, then the tensors grouped by role (all X, then all G, then all
state tensors), and outputs are grouped the same way (all new X, then each new state).
The arithmetic follows the operator specifications term by term.
"""

from __future__ import annotations

import numpy as np

from . import kernel

_DOMAIN = "ai.onnx.preview.training"


def _groups(inputs, roles: int):
    """(r, t, [per-tensor tuples of the ``roles`` inputs]) from the flat input list."""
    r, t = inputs[0], inputs[1]
    rest = inputs[2:]
    n = len(rest) // roles
    return r, t, [tuple(rest[k * n + i] for k in range(roles)) for i in range(n)]


def _regroup(per_tensor):
    """[(x, s1, s2), ...] -> [x..., s1..., s2...] (the outputs' order)."""
    return [out[k] for k in range(len(per_tensor[0])) for out in per_tensor]


@kernel("Adagrad", domain=_DOMAIN)
def adagrad(inputs, attrs, ctx):
    r, t, tensors = _groups(inputs, 3)
    decay = attrs.get("decay_factor", 0.0)
    eps = attrs.get("epsilon", 1e-6)
    norm = attrs.get("norm_coefficient", 0.0)
    rate = r / (1 + t * decay)
    results = []
    for x, g, h in tensors:
        g_reg = norm * x + g
        h_new = h + g_reg * g_reg
        x_new = x - rate * g_reg / (np.sqrt(h_new) + eps)
        results.append((x_new.astype(x.dtype), h_new.astype(h.dtype)))
    return _regroup(results)


@kernel("Adam", domain=_DOMAIN)
def adam(inputs, attrs, ctx):
    r, t, tensors = _groups(inputs, 4)
    alpha, beta = attrs.get("alpha", 0.9), attrs.get("beta", 0.999)
    eps = attrs.get("epsilon", 1e-6)
    norm, norm_post = attrs.get("norm_coefficient", 0.0), attrs.get("norm_coefficient_post", 0.0)
    # bias correction of both moments, folded into the learning rate (none at step 0)
    rate = r * np.sqrt(1 - beta ** t) / (1 - alpha ** t) if t > 0 else r
    results = []
    for x, g, v, h in tensors:
        g_reg = norm * x + g
        v_new = alpha * v + (1 - alpha) * g_reg
        h_new = beta * h + (1 - beta) * (g_reg * g_reg)
        x_new = (1 - norm_post) * (x - rate * (v_new / (np.sqrt(h_new) + eps)))
        results.append((x_new.astype(x.dtype), v_new.astype(v.dtype), h_new.astype(h.dtype)))
    return _regroup(results)


@kernel("Momentum", domain=_DOMAIN)
def momentum(inputs, attrs, ctx):
    r, t, tensors = _groups(inputs, 3)
    alpha, beta = attrs["alpha"], attrs["beta"]
    norm = attrs["norm_coefficient"]
    nesterov = attrs.get("mode", "standard") == "nesterov"
    beta_t = beta if t > 0 else 1  # the first step takes the whole gradient
    results = []
    for x, g, v in tensors:
        g_reg = norm * x + g
        v_new = alpha * v + beta_t * g_reg
        step = g_reg + alpha * v_new if nesterov else v_new
        results.append(((x - r * step).astype(x.dtype), v_new.astype(v.dtype)))
    return _regroup(results)

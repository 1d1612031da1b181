"""Operators of the ai.onnx.ml domain: Binarizer, ArrayFeatureExtractor, TreeEnsemble.

These are classic-machine-learning operators (scikit-learn models exported to ONNX);
they are small and run in numpy or plain Python, following onnx's reference semantics.
"""

from __future__ import annotations

import numpy as np

from . import kernel
from .checks import unsupported

_ML = "ai.onnx.ml"


@kernel("Binarizer", domain=_ML)
def binarizer(inputs, attrs, ctx):
    x = inputs[0]
    return [(x > attrs.get("threshold", 0.0)).astype(x.dtype)]


@kernel("ArrayFeatureExtractor", domain=_ML)
def array_feature_extractor(inputs, attrs, ctx):
    """Select entries of the last axis; a 1-D input gives one row (as onnxruntime does)."""
    data, indices = inputs
    index = np.asarray(indices, dtype=np.int64).reshape(-1)
    if index.size and (index.max() >= data.shape[-1] or index.min() < 0):
        raise IndexError(f"indices must lie in [0, {data.shape[-1]})")
    out = data[..., index]
    return [out.reshape((1, index.size) if data.ndim == 1 else data.shape[:-1] + (index.size,))]


# nodes_modes values of TreeEnsemble
_LEQ, _LT, _GTE, _GT, _EQ, _NEQ, _MEMBER = range(7)
_COMPARE = {
    _LEQ: lambda v, s: v <= s, _LT: lambda v, s: v < s, _GTE: lambda v, s: v >= s,
    _GT: lambda v, s: v > s, _EQ: lambda v, s: v == s, _NEQ: lambda v, s: v != s,
    _MEMBER: lambda v, s: v in s,
}


def _member_sets(attrs, roots):
    """The set of each MEMBER node: ``membership_values`` holds them NaN-separated, in
    the order a depth-first walk of the trees (true branch first) meets the nodes."""
    values = attrs.get("membership_values")
    if values is None:
        return {}
    groups, current = [], set()
    for v in np.asarray(values, dtype=np.float64).reshape(-1):
        if np.isnan(v):
            groups.append(current)
            current = set()
        else:
            current.add(float(v))
    modes, true_ids, false_ids = (attrs["nodes_modes"], attrs["nodes_truenodeids"],
                                  attrs["nodes_falsenodeids"])
    true_leaf, false_leaf = attrs["nodes_trueleafs"], attrs["nodes_falseleafs"]
    sets, queue = {}, iter(groups)
    stack = list(reversed(roots))
    while stack:
        i = stack.pop()
        if modes[i] == _MEMBER:
            sets[i] = next(queue, set())
        for child, leaf in ((false_ids[i], false_leaf[i]), (true_ids[i], true_leaf[i])):
            if not leaf:
                stack.append(child)
    return sets


@kernel("TreeEnsemble", domain=_ML)
def tree_ensemble(inputs, attrs, ctx):
    """Sum (or average, min, max) of the leaf weights each row reaches in every tree."""
    x = inputs[0]
    splits = np.asarray(attrs["nodes_splits"], dtype=np.float64).reshape(-1)
    features = attrs["nodes_featureids"]
    modes = [int(m) for m in np.asarray(attrs["nodes_modes"]).reshape(-1)]
    true_ids, false_ids = attrs["nodes_truenodeids"], attrs["nodes_falsenodeids"]
    true_leaf, false_leaf = attrs["nodes_trueleafs"], attrs["nodes_falseleafs"]
    missing = attrs.get("nodes_missing_value_tracks_true") or [0] * len(modes)
    weights = np.asarray(attrs["leaf_weights"], dtype=np.float64).reshape(-1)
    targets = attrs["leaf_targetids"]
    roots = list(attrs["tree_roots"])
    n_targets = attrs["n_targets"]
    aggregate = attrs.get("aggregate_function", 1)  # 0 average, 1 sum, 2 min, 3 max
    post = attrs.get("post_transform", 0)
    if aggregate not in (0, 1, 2, 3):
        raise unsupported(ctx, f"aggregate_function {aggregate}")
    attrs_modes = dict(attrs, nodes_modes=modes)
    sets = _member_sets(attrs_modes, roots)
    rows = x.reshape(len(x), -1).astype(np.float64)
    init = {0: 0.0, 1: 0.0, 2: np.inf, 3: -np.inf}[aggregate]
    result = np.full((len(rows), n_targets), init)
    for r, row in enumerate(rows):
        for root in roots:
            if true_leaf[root] and false_leaf[root] and true_ids[root] == false_ids[root]:
                leaf = root  # a tree that is a single leaf
            else:
                i = root
                while True:
                    v = row[features[i]]
                    split = sets.get(i) if modes[i] == _MEMBER else splits[i]
                    go_true = _COMPARE[modes[i]](v, split) or (missing[i] and np.isnan(v))
                    nxt, is_leaf = (true_ids[i], true_leaf[i]) if go_true else \
                        (false_ids[i], false_leaf[i])
                    if is_leaf:
                        leaf = nxt
                        break
                    i = nxt
            t, w = targets[leaf], weights[leaf]
            if aggregate in (0, 1):
                result[r, t] += w
            else:
                result[r, t] = min(result[r, t], w) if aggregate == 2 else max(result[r, t], w)
    if aggregate == 0:
        result /= len(roots)
    if post == 2:  # logistic
        result = 1 / (1 + np.exp(-result))
    elif post == 1:  # softmax
        result = np.exp(result - result.max(axis=1, keepdims=True))
        result /= result.sum(axis=1, keepdims=True)
    elif post != 0:
        raise unsupported(ctx, f"TreeEnsemble post_transform {post}")
    return [result.astype(x.dtype)]

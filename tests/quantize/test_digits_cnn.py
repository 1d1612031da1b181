"""Accuracy: a small CNN trained on scikit-learn's digits keeps its accuracy at int8.

The network (Conv 3x3 -> Relu -> MaxPool 2x2 -> Conv 3x3 -> Relu -> Flatten -> Gemm) is
trained here with plain numpy (im2col convolutions, hand-written gradients, Adam), then
built as ONNX, imported, quantized for warboy-2pe and compared on held-out digits.
"""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import npuc
from npuc.compiler.executor.interpreter import execute
from npuc.compiler.quantize import quantize

pytest.importorskip("sklearn")


def im2col(x, k=3, pad=1):
    """(N, C, H, W) -> (N*H*W, C*k*k) patches for a stride-1 'same' convolution."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((n, c, k, k, h, w), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, i, j] = xp[:, :, i:i + h, j:j + w]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * h * w, c * k * k)


def col2im(cols, shape, k=3, pad=1):
    n, c, h, w = shape
    cols = cols.reshape(n, h, w, c, k, k).transpose(0, 3, 4, 5, 1, 2)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), cols.dtype)
    for i in range(k):
        for j in range(k):
            xp[:, :, i:i + h, j:j + w] += cols[:, :, i, j]
    return xp[:, :, pad:pad + h, pad:pad + w]


def conv_forward(x, w, b):
    n, _, h, wd = x.shape
    cols = im2col(x)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), cols


def train_cnn(x, y, epochs=25, seed=0):
    rng = np.random.default_rng(seed)
    p = {"w1": rng.normal(0, np.sqrt(2 / 9), (8, 1, 3, 3)), "b1": np.zeros(8),
         "w2": rng.normal(0, np.sqrt(2 / 72), (16, 8, 3, 3)), "b2": np.zeros(16),
         "w3": rng.normal(0, np.sqrt(2 / 256), (10, 256)), "b3": np.zeros(10)}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s = {k: np.zeros_like(v) for k, v in p.items()}
    step = 0
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(x)), len(x) // 32):
            xb, yb = x[batch], y[batch]
            n = len(batch)
            a1, c1 = conv_forward(xb, p["w1"], p["b1"])
            r1 = np.maximum(a1, 0)
            win = r1.reshape(n, 8, 4, 2, 4, 2)
            pooled = win.max(axis=(3, 5))
            a2, c2 = conv_forward(pooled, p["w2"], p["b2"])
            r2 = np.maximum(a2, 0)
            flat = r2.reshape(n, -1)
            logits = flat @ p["w3"].T + p["b3"]
            prob = np.exp(logits - logits.max(1, keepdims=True))
            prob /= prob.sum(1, keepdims=True)
            d = prob
            d[np.arange(n), yb] -= 1
            d /= n
            g = {"w3": d.T @ flat, "b3": d.sum(0)}
            dr2 = (d @ p["w3"]).reshape(r2.shape) * (a2 > 0)
            dcol = dr2.transpose(0, 2, 3, 1).reshape(-1, 16)
            g["w2"] = (dcol.T @ c2).reshape(p["w2"].shape)
            g["b2"] = dcol.sum(0)
            dpooled = col2im(dcol @ p["w2"].reshape(16, -1), pooled.shape)
            mask = win == pooled[:, :, :, None, :, None]
            dr1 = (mask * dpooled[:, :, :, None, :, None]).reshape(r1.shape) * (a1 > 0)
            dcol1 = dr1.transpose(0, 2, 3, 1).reshape(-1, 8)
            g["w1"] = (dcol1.T @ c1).reshape(p["w1"].shape)
            g["b1"] = dcol1.sum(0)
            step += 1
            for k in p:  # Adam
                m[k] = 0.9 * m[k] + 0.1 * g[k]
                s[k] = 0.999 * s[k] + 0.001 * g[k] ** 2
                mh, sh = m[k] / (1 - 0.9 ** step), s[k] / (1 - 0.999 ** step)
                p[k] -= 0.01 * mh / (np.sqrt(sh) + 1e-8)
    return {k: v.astype(np.float32) for k, v in p.items()}


def cnn_model(p):
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool1"),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["a2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["a2"], ["r2"], name="relu2"),
        helper.make_node("Flatten", ["r2"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1, name="fc")]
    inits = [numpy_helper.from_array(v, k) for k, v in sorted(p.items())]
    graph = helper.make_graph(
        nodes, "digits_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                            ["n", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_small_cnn_keeps_its_accuracy_at_int8_for_warboy():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).reshape(-1, 1, 8, 8)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1300], order[1300:]
    params = train_cnn(x[train], y[train])
    g = npuc.import_onnx(cnn_model(params))
    xte = x[test].astype(np.float32)
    cal = [{"x": x[train][i:i + 64].astype(np.float32)} for i in range(0, 256, 64)]
    q = quantize(npuc.optimize(g, level=2), "warboy-2pe", cal, progress=False)
    assert sum(n.op_type == "QConv" for n in q.nodes) == 2, [n.op_type for n in q.nodes]
    acc_f = np.mean(execute(g, {"x": xte})["logits"].argmax(1) == y[test])
    acc_q = np.mean(execute(q, {"x": xte})["logits"].argmax(1) == y[test])
    assert acc_f > 0.95, acc_f
    assert acc_q >= acc_f - 0.005, (acc_f, acc_q)

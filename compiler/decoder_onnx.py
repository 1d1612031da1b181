"""A decoder's ONNX models as onnxruntime runs them, for its reference outputs and its
calibration samples: the session and HuggingFace's names of the KV cache.
"""

from __future__ import annotations

from npuc.ir.errors import NpucError


def prompt_feeds(ids) -> dict:
    """A prefill's inputs for the prompts ``ids`` (``[batch, s]`` token ids): every
    position attended, positions ``0..s-1``."""
    import numpy as np

    b, s = ids.shape
    return {"input_ids": ids, "attention_mask": np.ones((b, s), np.int64),
            "position_ids": np.tile(np.arange(s, dtype=np.int64), (b, 1))}


def present_name(past: str) -> str:
    """``past_key_values.0.key`` -> ``present.0.key`` (HuggingFace's names)."""
    rest = past.split(".", 1)[1] if "." in past else past
    return f"present.{rest}"


def reference_session(proto):
    """An onnxruntime session on a ModelProto or an ONNX file (its external data beside
    it)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise NpucError("verifying a decoder needs onnxruntime (pip install onnxruntime)") \
            from None
    if proto is None:
        raise NpucError("the decoder's ONNX model was not kept for the reference")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 3
    model = proto.SerializeToString() if hasattr(proto, "SerializeToString") else str(proto)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


class ReferenceDecoder:
    """onnxruntime on the original prefill and decode models, sequences by cache row as
    :class:`~npuc.compiler.serving.runtime.DecoderRuntime` keeps them, each sequence's
    cache in the model's own layout (its tokens at positions ``0..n-1``, no gaps): the
    decode model's past holds ``max_seq - 1`` positions, its new token comes last, and it
    runs on the sequences in flight gathered into one batch."""

    def __init__(self, prefill, decode, max_seq: int):
        """``prefill``: the prefill model, or a list of them (one per prompt length)."""
        models = prefill if isinstance(prefill, (list, tuple)) else [prefill]
        self.prefills = [reference_session(m) for m in models]
        self.sessions = [self.prefills[0], reference_session(decode)]
        self.max_seq = max_seq
        self.cache: dict[int, dict] = {}   # row -> cache name -> [kv_heads, max_seq, dim]
        self.length: dict[int, int] = {}   # row -> tokens in its cache

    def prefill(self, ids, rows: list[int]):
        """The prompts ``ids`` (``[len(rows), s]``) into ``rows``; last-token logits."""
        import numpy as np

        b, s = ids.shape
        self.sessions[0] = next((x for x in self.prefills if _length(x) == s),
                                self.prefills[0])
        out = self._run(0, prompt_feeds(ids))
        for k, row in enumerate(rows):
            self.cache[row], self.length[row] = {}, s
            for name, value in out.items():
                if name.startswith("present"):
                    cache = np.zeros(value.shape[1:2] + (self.max_seq,) + value.shape[3:],
                                     value.dtype)
                    cache[:, :s] = value[k]
                    self.cache[row][name] = cache
        return np.asarray(out["logits"])[:, -1, :]

    def decode(self, tokens: dict) -> dict:
        """One step of each row's sequence (row -> token); each row's logits."""
        import numpy as np

        rows = sorted(tokens)
        last = self.max_seq - 1
        mask = np.zeros((len(rows), self.max_seq), np.int64)
        mask[:, last] = 1  # the new token, appended after the past
        for k, r in enumerate(rows):
            mask[k, :self.length[r]] = 1
        feeds = {"input_ids": np.asarray([[tokens[r]] for r in rows], np.int64),
                 "attention_mask": mask,
                 "position_ids": np.asarray([[self.length[r]] for r in rows], np.int64)}
        for x in self.sessions[1].get_inputs():
            if x.name.startswith("past"):
                name = present_name(x.name)
                feeds[x.name] = np.stack([self.cache[r][name][:, :last] for r in rows])
        out = self._run(1, feeds)
        for k, r in enumerate(rows):
            for name, cache in self.cache[r].items():
                cache[:, self.length[r]] = out[name][k, :, last]
            self.length[r] += 1
        return {r: np.asarray(out["logits"])[k, -1] for k, r in enumerate(rows)}

    def release(self, row: int) -> None:
        self.cache.pop(row), self.length.pop(row)

    def _run(self, i: int, feeds: dict) -> dict:
        session = self.sessions[i]
        wanted = {x.name for x in session.get_inputs()}
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, {k: v for k, v in feeds.items()
                                                   if k in wanted})))


def _length(session):
    """The prompt length a prefill session takes (None when not fixed)."""
    for x in session.get_inputs():
        if x.name == "input_ids" and len(x.shape) > 1 and isinstance(x.shape[1], int):
            return x.shape[1]
    return None

"""Verifying a decoder as it is served: prefill, then greedy decode steps with the cache.

:func:`verify_decoder` compiles the prefill and decode programs of a decoder into one
artifact (:mod:`npuc.compiler.decoder_artifact`), then runs a prompt through the
simulated prefill program and ``steps`` decode steps through the simulated decode program,
its KV cache kept in the simulator's DRAM between programs, as the chip keeps it. Beside
it, onnxruntime runs the original models: the prefill model on the prompt, the decode
model on a cache the loop keeps in the model's own layout (past of ``max_seq - 1``
positions, the unfilled ones masked out by ``attention_mask``).

At every step both sides get the same token, the reference's greedy choice (so that one
disagreement does not change every later input), and the step's row says the reference's
token, the program's token, whether they agree, and the logits' SQNR and cosine against
the reference. Each step also runs the graphs the programs were lowered from (npuc's interpreter, the
caches passed along by name), which the programs must match bit for bit.

The verdict: every step's logits are within the precision's tolerance
(:data:`npuc.compiler.verification.TOLERANCE`), the program matches its IR, and every
token agrees, or differs only
where the reference itself hesitates: its margin between the two tokens is within
:data:`TIE` times the RMS error of the program's logits (a "near-tie", counted apart).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npuc.compiler.decoder_onnx import present_name, reference_session
from npuc.ir.errors import NpucError

# a differing token is a near-tie when the reference's margin is within this many RMS
# errors of the program's logits: the difference of two logits' errors has about 1.4
# times their RMS, so 3 is about two standard deviations of it
TIE = 3.0


@dataclass
class DecodeVerifyResult:
    """Token-by-token agreement of the simulated programs with onnxruntime."""

    passed: bool
    precision: str
    tolerance: dict
    steps: list               # per step: step, position, reference/program token, measures
    built: object = None      # the DecoderResult
    notes: list = field(default_factory=list)

    @property
    def agreement(self) -> float:
        """The share of steps whose greedy token is the reference's."""
        return sum(s["token_agrees"] for s in self.steps) / max(len(self.steps), 1)

    @property
    def near_ties(self) -> int:
        """Steps whose token differs within the logits' noise (see :data:`TIE`)."""
        return sum(s["agreement"] == "near-tie" for s in self.steps)

    def to_json(self) -> dict:
        return {"passed": self.passed, "precision": self.precision, "tolerance": self.tolerance,
                "agreement": self.agreement, "near_ties": self.near_ties,
                "steps": self.steps, "notes": self.notes}


def verify_decoder(model, target, steps: int, max_seq: int, decode_model=None, batch: int = 1,
                   prompt=None, seed: int = 0, output_dir=None, **options) -> DecodeVerifyResult:
    """Compile ``model``'s prefill and decode programs and check ``steps`` greedy steps
    after a prompt (token ids ``[batch, s]``; random ones when None) against onnxruntime."""
    from npuc.compiler.decoder_artifact import compile_decoder

    if steps < 1:
        raise NpucError("--decode-steps must be at least 1")
    built = compile_decoder(model, target, max_seq, decode_model, batch=batch,
                            output_dir=output_dir, **options)
    return check_steps(built, steps, batch, prompt, seed)


def check_steps(built, steps: int, batch: int = 1, prompt=None, seed: int = 0
                ) -> DecodeVerifyResult:
    """The prefill and ``steps`` decode steps of a compiled decoder (a
    :class:`~npuc.compiler.decoder_artifact.DecoderResult`) against onnxruntime."""
    from npuc.compiler.verification import TOLERANCE, compare

    max_seq = built.programs[-1]["state"]["max_seq"]
    pre = built.results[built.index("prefill")]
    s = _prompt_length(built)
    if s + steps > max_seq:
        raise NpucError(f"a {s}-token prompt and {steps} decode steps need {s + steps} cache "
                        f"positions; --max-seq is {max_seq}")
    ids = _prompt(prompt, pre, batch, s, seed)
    ref = _Reference(pre.source_proto, built.results[-1].source_proto, max_seq)
    sim, ir = _Simulated(built), _Lowered(built)
    sqnr_min, cos_min = TOLERANCE[built.results[-1].precision]
    rows = []
    want, got = ref.prefill(ids), sim.prefill(ids)
    token = np.argmax(want, axis=-1)[:, None]
    rows.append(_row(0, s - 1, want, got, compare, ir.prefill(ids)))
    for k in range(1, steps + 1):
        position = s + k - 1
        want, got = ref.decode(token, position), sim.decode(token, position)
        rows.append(_row(k, position, want, got, compare, ir.decode(token, position)))
        token = np.argmax(want, axis=-1)[:, None]
    for r in rows:
        r["passed"] = r["agreement"] != "differs" and r["sqnr_db"] >= sqnr_min and \
            r["cosine"] >= cos_min and r["program_vs_ir_identical"]
    return DecodeVerifyResult(all(r["passed"] for r in rows), built.results[-1].precision,
                              {"sqnr_db_min": sqnr_min, "cosine_min": cos_min}, rows, built,
                              [f"prompt of {s} tokens, batch {batch}, cache of {max_seq} "
                               "positions; each step is fed the reference's token"])


def _row(step, position, want, got, compare, lowered) -> dict:
    """One step's measures; a token that differs is a near-tie when the reference's own
    margin between its token and the program's is within :data:`TIE` times the RMS error
    of the program's logits at that step (a choice the precision's noise can flip)."""
    m = compare(got, want)
    ref_tok, got_tok = np.argmax(want, axis=-1), np.argmax(got, axis=-1)
    rows = np.arange(want.shape[0])
    margin = float(np.max(want[rows, ref_tok] - want[rows, got_tok]))
    rms = float(np.sqrt(np.mean((got.astype(np.float64) - want) ** 2)))
    same = bool(np.array_equal(ref_tok, got_tok))
    return {"step": step, "position": position, "reference_token": ref_tok.tolist(),
            "program_token": got_tok.tolist(), "token_agrees": same,
            "agreement": "agrees" if same else "near-tie" if margin <= TIE * rms else "differs",
            "reference_margin": margin, "rms_error": rms,
            "sqnr_db": m["sqnr_db"], "cosine": m["cosine"], "max_abs_error": m["max_abs_error"],
            "program_vs_ir_identical": bool(np.array_equal(got, lowered))}


def _prompt_length(built) -> int:
    program = built.programs[built.index("prefill")]
    return int(program["inputs"]["input_ids"]["shape"][1])


def _prompt(prompt, compiled, batch: int, s: int, seed: int) -> np.ndarray:
    if prompt is not None:
        ids = np.asarray(prompt, np.int64)
        if ids.shape != (batch, s):
            raise NpucError(f"the prompt's token ids are {list(ids.shape)}; the prefill "
                            f"program takes [{batch}, {s}]")
        return ids
    vocab = _vocab(compiled)
    return np.random.default_rng(seed).integers(0, vocab, (batch, s), dtype=np.int64)


def _vocab(compiled) -> int:
    for node in compiled.graph.nodes:
        if node.op_type == "Gather" and node.inputs[0].const is not None:
            return int(node.inputs[0].const.shape[0])
    raise NpucError("the model has no embedding table (a Gather of token ids) to draw a "
                    "prompt from; give the prompt")


def _last(logits: np.ndarray) -> np.ndarray:
    return np.asarray(logits)[:, -1, :]


class _Simulated:
    """The artifact's programs on one simulated device: the DRAM arena (and the caches
    in it) is kept from one program to the next."""

    def __init__(self, built):
        self.built = built
        self.max_seq = built.programs[-1]["state"]["max_seq"]
        size = max(p["memory"]["dram_bytes"] for p in built.programs)
        self.dram = np.zeros(max(size, 1), np.uint8)

    def _run(self, i: int, feeds: dict) -> np.ndarray:
        from npuc.compiler.executor.simulator import simulate

        r = self.built.results[i]
        out = simulate(self.built.programs[i], self.built.weights, feeds, target=r.target,
                       dram=self.dram)
        return _last(out["logits"])

    def prefill(self, ids: np.ndarray) -> np.ndarray:
        b, s = ids.shape
        feeds = {"input_ids": ids, "attention_mask": np.ones((b, s), np.int64),
                 "position_ids": np.tile(np.arange(s, dtype=np.int64), (b, 1)),
                 "cache_position": np.arange(s, dtype=np.int64)}
        return self._run(self.built.index("prefill"), feeds)

    def decode(self, token: np.ndarray, position: int) -> np.ndarray:
        b = token.shape[0]
        mask = np.zeros((b, self.max_seq), np.int64)
        mask[:, :position + 1] = 1  # the cache so far and the new token at its position
        feeds = {"input_ids": token, "attention_mask": mask,
                 "position_ids": np.full((b, 1), position, np.int64),
                 "cache_position": np.asarray([position], np.int64)}
        return self._run(self.built.index("decode"), feeds)


class _Lowered(_Simulated):
    """The graphs the programs were lowered from, run by npuc's interpreter with the
    caches passed from one to the next by name (the program must match them bit for
    bit)."""

    def __init__(self, built):
        super().__init__(built)
        self.caches: dict[str, np.ndarray] = {}

    def _run(self, i: int, feeds: dict) -> np.ndarray:
        from npuc.compiler.executor.interpreter import execute
        from npuc.compiler.schedule.kvcache import entries

        graph = self.built.results[i].graph
        given = dict(feeds)
        for e in entries(graph):
            v = graph.value(e.input)
            given[e.input] = self.caches.get(e.state, np.zeros(v.type.shape,
                                                               v.type.dtype.numpy))
        out = execute(graph, given)
        self.caches.update({e.state: out[e.state] for e in entries(graph)})
        return _last(out["logits"])


class _Reference:
    """onnxruntime on the original models, with the cache kept by the loop: the decode
    model's past holds ``max_seq - 1`` positions and its new token comes last."""

    def __init__(self, prefill, decode, max_seq: int):
        self.sessions = [reference_session(prefill), reference_session(decode)]
        self.max_seq = max_seq
        self.cache: dict[str, np.ndarray] = {}

    def prefill(self, ids: np.ndarray) -> np.ndarray:
        b, s = ids.shape
        out = self._run(0, {"input_ids": ids, "attention_mask": np.ones((b, s), np.int64),
                            "position_ids": np.tile(np.arange(s, dtype=np.int64), (b, 1))})
        for name, value in out.items():
            if name.startswith("present"):
                cache = np.zeros(value.shape[:2] + (self.max_seq,) + value.shape[3:],
                                 value.dtype)
                cache[:, :, :s] = value
                self.cache[name] = cache
        return _last(out["logits"])

    def decode(self, token: np.ndarray, position: int) -> np.ndarray:
        b, last = token.shape[0], self.max_seq - 1
        mask = np.zeros((b, self.max_seq), np.int64)
        mask[:, :position] = 1
        mask[:, last] = 1  # the new token, appended after the past
        feeds = {"input_ids": token, "attention_mask": mask,
                 "position_ids": np.full((b, 1), position, np.int64)}
        for name in self.sessions[1].get_inputs():
            if name.name.startswith("past"):
                feeds[name.name] = self.cache[present_name(name.name)][:, :, :last]
        out = self._run(1, feeds)
        for name, cache in self.cache.items():
            cache[:, :, position] = out[name][:, :, last]
        return _last(out["logits"])

    def _run(self, i: int, feeds: dict) -> dict:
        session = self.sessions[i]
        wanted = {x.name for x in session.get_inputs()}
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, {k: v for k, v in feeds.items()
                                                   if k in wanted})))

"""Verifying a decoder as it is served: prefill, then greedy decode steps with the cache.

:func:`verify_decoder` compiles the prefill and decode programs of a decoder into one
artifact (:mod:`npuc.compiler.decoder_artifact`), then serves prompts with a
:class:`~npuc.compiler.serving.runtime.DecoderRuntime` on the simulated programs: each
prompt is prefilled into a row of the KV cache, and ``steps`` decode rounds give every
sequence in flight its next token, the cache kept in the simulator's DRAM between
programs, as the chip keeps it. With several decode batches the sequences join round by
round (:func:`admissions`: the first round at the smallest batch, the next at the next
one...), so that every decode program runs and the later sequences have unfilled
columns before their first step, masked as a server masks them. Beside it, onnxruntime
runs the original models (:class:`~npuc.compiler.decoder_onnx.ReferenceDecoder`): the
prefill model on each prompt, the decode model on each sequence's own cache, kept in the
model's own layout.

At every step both sides get the same token, the reference's greedy choice (so that one
disagreement does not change every later input), and the step's row says the reference's
token, the program's token, whether they agree, and the logits' SQNR and cosine against
the reference. Each step also runs the graphs the programs were lowered from (npuc's
interpreter, the caches passed along by name, served by the same runtime), which the
programs must match bit for bit.

The verdict: every step's logits are within the precision's tolerance
(:data:`npuc.compiler.verification.TOLERANCE`), the program matches its IR, and every
token agrees, or differs only
where the reference itself hesitates: its margin between the two tokens is within
:data:`TIE` times the RMS error of the program's logits (a "near-tie", counted apart).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
                   prompt=None, seed: int = 0, output_dir=None, decode_batch=None,
                   **options) -> DecodeVerifyResult:
    """Compile ``model``'s prefill and decode programs (prefill at ``batch``, decode at
    each of ``decode_batch``) and check ``steps`` greedy rounds against onnxruntime, on as
    many sequences as the largest decode batch (see :func:`check_steps`)."""
    from npuc.compiler.decoder_artifact import compile_decoder

    if steps < 1:
        raise NpucError("--decode-steps must be at least 1")
    from npuc.compiler.decoder_artifact import decode_batches

    sizes = decode_batches(decode_batch, batch)
    if steps < len(sizes):  # round k runs the k-th decode program: check every one
        raise NpucError(f"--decode-steps {steps} runs the decode programs at batch "
                        f"{', '.join(map(str, sizes[:steps]))} only; give --decode-steps "
                        f"{len(sizes)} or more to check the one(s) at batch "
                        f"{', '.join(map(str, sizes[steps:]))}")
    built = compile_decoder(model, target, max_seq, decode_model, batch=batch,
                            output_dir=output_dir, decode_batch=decode_batch, **options)
    return check_steps(built, steps, prompt=prompt, seed=seed)


def admissions(batches: list[int], prefill_batch: int, steps: int) -> list[int]:
    """How many sequences are in flight at each of ``steps`` decode rounds: round ``k``
    (from 1) at the ``k``-th decode batch (the last one from then on), so that the
    sequences join as a server admits them and every decode program runs; each count a
    whole number of prefills of ``prefill_batch``."""
    out = []
    for k in range(steps):
        want = batches[min(k, len(batches) - 1)]
        out.append(max(prefill_batch, want // prefill_batch * prefill_batch))
    return out


def check_steps(built, steps: int, batch: int | None = None, prompt=None, seed: int = 0
                ) -> DecodeVerifyResult:
    """Prompts through the prefill programs and ``steps`` greedy decode rounds through the
    decode programs of a compiled decoder (a
    :class:`~npuc.compiler.decoder_artifact.DecoderResult`), served by a
    :class:`~npuc.compiler.serving.runtime.DecoderRuntime`, against onnxruntime: the whole
    check once per prefill program (prompt length, ``--shape sequence=4,8``), each from a
    fresh cache, so that every program of the artifact runs. Sequences join as
    :func:`admissions` says (``batch``: at most that many in flight; the largest decode
    batch when None), each round at the decode program the runtime picks; ``prompt``: the
    token ids of every sequence, in the order they join (the prefill program of its
    length only)."""
    which = [i for i, role in enumerate(built.roles) if role == "prefill"]
    if prompt is not None:
        length = np.asarray(prompt).shape[-1]
        which = [i for i in which if _prompt_length(built, i) == length] or which[:1]
    parts = [_check_prefill(built, steps, i, batch, prompt, seed) for i in which]
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return DecodeVerifyResult(all(p.passed for p in parts), first.precision, first.tolerance,
                              [row for p in parts for row in p.steps], built,
                              [note for p in parts for note in p.notes])


def _prompt_length(built, i: int) -> int:
    return built.programs[i]["inputs"]["input_ids"]["shape"][1]


def _check_prefill(built, steps: int, which: int, batch, prompt, seed: int
                   ) -> DecodeVerifyResult:
    """:func:`check_steps` with the prefill program ``which``."""
    from npuc.compiler.decoder_onnx import ReferenceDecoder
    from npuc.compiler.serving.runtime import DecoderRuntime
    from npuc.compiler.verification import TOLERANCE

    max_seq = built.programs[-1]["state"]["max_seq"]
    pre = built.results[which]
    pb, s = built.programs[which]["inputs"]["input_ids"]["shape"]
    if s + steps > max_seq:
        raise NpucError(f"a {s}-token prompt and {steps} decode steps need {s + steps} cache "
                        f"positions; --max-seq is {max_seq}")
    batches = [b for b in built.decode_batches if batch is None or b <= batch] or \
        [min(built.decode_batches)]
    plan = admissions(batches, pb, steps)
    ids = _prompt(prompt, pre, plan[-1], s, seed)
    sides = (ReferenceDecoder(pre.source_proto, built.results[-1].source_proto, max_seq),
             DecoderRuntime.simulated(built.programs, built.roles, built.weights,
                                      pre.target),
             DecoderRuntime(built.programs, built.roles, _Lowered(built).run))
    rows, tokens = [], {}
    for k, live in enumerate(plan):
        while len(tokens) < live:
            rows.append(_admit(sides, ids[len(tokens):len(tokens) + pb], k, tokens))
        rows.append(_round(sides, k + 1, tokens))
    sqnr_min, cos_min = TOLERANCE[built.results[-1].precision]
    for r in rows:
        r["passed"] = r["agreement"] != "differs" and r["sqnr_db"] >= sqnr_min and \
            r["cosine"] >= cos_min and r["program_vs_ir_identical"]
    used = sorted({r["batch"] for r in rows if r["kind"] == "decode"})
    return DecodeVerifyResult(all(r["passed"] for r in rows), built.results[-1].precision,
                              {"sqnr_db_min": sqnr_min, "cosine_min": cos_min}, rows, built,
                              [f"prompts of {s} tokens, {plan[-1]} sequence(s) joining "
                               f"{pb} at a time, decode programs at batch "
                               f"{', '.join(map(str, used))}, cache of {max_seq} positions "
                               f"and {built.programs[-1]['state']['rows']} rows; each step "
                               "is fed the reference's token"])


def _admit(sides, ids, step: int, tokens: dict) -> dict:
    """Prefill ``ids`` on every side into the same rows; their next tokens into
    ``tokens``; the comparison row."""
    ref, sim, ir = sides
    rows, got = sim.prefill(ids)
    rows_ir, lowered = ir.prefill(ids)
    if rows_ir != rows:
        raise NpucError(f"internal: the IR run put the prompts in rows {rows_ir}, the "
                        f"program in {rows}")
    want = ref.prefill(ids, rows)
    tokens.update(zip(rows, np.argmax(want, axis=-1).tolist()))
    return _row("prefill", step, rows, len(sim.live[rows[0]].columns) - 1,
                sim.programs[sim.prefills[ids.shape[1]]]["state"]["batch"], want, got,
                lowered)


def _round(sides, step: int, tokens: dict) -> dict:
    """One decode round on every side; the next tokens into ``tokens``; the row."""
    ref, sim, ir = sides
    batch = sim.programs[sim.decode_program()]["state"]["batch"]
    got, lowered, want = sim.decode(tokens), ir.decode(tokens), ref.decode(tokens)
    rows = sorted(tokens)
    column = sim.live[rows[0]].columns[-1]
    tokens.update({r: int(np.argmax(want[r])) for r in rows})
    stack = [np.stack([d[r] for r in rows]) for d in (want, got, lowered)]
    return _row("decode", step, rows, column, batch, *stack)


def _row(kind, step, rows, position, batch, want, got, lowered) -> dict:
    """One step's measures; a token that differs is a near-tie when the reference's own
    margin between its token and the program's is within :data:`TIE` times the RMS error
    of the program's logits at that step (a choice the precision's noise can flip)."""
    from npuc.compiler.verification import compare

    m = compare(got, want)
    ref_tok, got_tok = np.argmax(want, axis=-1), np.argmax(got, axis=-1)
    index = np.arange(want.shape[0])
    margin = float(np.max(want[index, ref_tok] - want[index, got_tok]))
    rms = float(np.sqrt(np.mean((got.astype(np.float64) - want) ** 2)))
    same = bool(np.array_equal(ref_tok, got_tok))
    return {"kind": kind, "step": step, "rows": list(rows), "batch": int(batch),
            "position": int(position), "reference_token": ref_tok.tolist(),
            "program_token": got_tok.tolist(), "token_agrees": same,
            "agreement": "agrees" if same else "near-tie" if margin <= TIE * rms else "differs",
            "reference_margin": margin, "rms_error": rms,
            "sqnr_db": m["sqnr_db"], "cosine": m["cosine"], "max_abs_error": m["max_abs_error"],
            "program_vs_ir_identical": bool(np.array_equal(got, lowered))}


def _prompt(prompt, compiled, count: int, s: int, seed: int) -> np.ndarray:
    if prompt is not None:
        ids = np.asarray(prompt, np.int64)
        if ids.shape != (count, s):
            raise NpucError(f"the prompts' token ids are {list(ids.shape)}; the check "
                            f"takes [{count}, {s}] (a prompt per sequence, as long as the "
                            "prefill program's)")
        return ids
    vocab = _vocab(compiled)
    return np.random.default_rng(seed).integers(0, vocab, (count, s), dtype=np.int64)


def _vocab(compiled) -> int:
    for node in compiled.graph.nodes:
        if node.op_type == "Gather" and node.inputs[0].const is not None:
            return int(node.inputs[0].const.shape[0])
    raise NpucError("the model has no embedding table (a Gather of token ids) to draw a "
                    "prompt from; give the prompt")


class _Lowered:
    """The graphs the programs were lowered from, run by npuc's interpreter, each cache
    kept whole (all its rows) and passed by name: a program at batch ``b`` gets its
    leading ``b`` rows (the program must match its graph bit for bit)."""

    def __init__(self, built):
        self.built = built
        self.caches: dict[str, np.ndarray] = {}

    def run(self, i: int, feeds: dict) -> dict:
        from npuc.compiler.executor.interpreter import execute
        from npuc.compiler.schedule.kvcache import entries

        graph = self.built.results[i].graph
        rows = self.built.programs[i]["state"]["rows"]
        given = dict(feeds)
        for e in entries(graph):
            v = graph.value(e.input)
            if e.state not in self.caches:
                self.caches[e.state] = np.zeros((rows,) + tuple(v.type.shape[1:]),
                                                v.type.dtype.numpy)
            given[e.input] = self.caches[e.state][:v.type.shape[0]]
        out = execute(graph, given)
        for e in entries(graph):
            self.caches[e.state][:out[e.state].shape[0]] = out[e.state]
        return out

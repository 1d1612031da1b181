"""The answer judgement: only positions the float model decided count, CTC outputs are
read as text, and the laws that keep it honest."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.accuracy import MARGIN, agreement, flipped, looks_ctc
from npuc.ir.errors import NpucError

ALPHABET = " abcdefghijklmnopqrstuvwxyz"  # class 0 is the blank, class 1 the space


def ctc_frames(text: str, spread: float = 0.0) -> np.ndarray:
    """Per-frame probabilities [1, T, C] of ``text``: each character on two frames, a
    blank frame between characters; ``spread`` moves that much of the space frames'
    probability to the blank."""
    ids = []
    for ch in text:
        ids += [ALPHABET.index(ch) + 1] * 2 + [0]
    p = np.full((len(ids), len(ALPHABET) + 1), 0.001)
    p[np.arange(len(ids)), ids] = 0.97
    for t, i in enumerate(ids):
        if i == 1:
            p[t, 1], p[t, 0] = 0.97 - spread, 0.001 + spread
    return (p / p.sum(1, keepdims=True))[None]


def test_paid_in_full_losing_its_spaces_is_a_changed_answer():
    ref = ctc_frames("paid in full", spread=0.3)   # spaces at 0.67 against a 0.30 blank
    got = ctc_frames("paid in full", spread=0.55)  # blank now wins the space frames
    a = agreement({"y": ref}, {"y": got})          # auto: read as CTC
    assert (a.outputs["y"].mode, a.outputs["y"].blank, a.changed_share) == ("ctc", 0, 1.0)
    assert agreement({"y": ref}, {"y": got}, mode="argmax").changed_share == 1.0


def test_ctc_frames_moving_within_a_character_keep_the_text():
    ref = ctc_frames("hello")
    got = ref.copy()
    got[0, 1] = got[0, 2]  # the second frame of "h" now says blank: still "hello"
    a = agreement({"y": ref}, {"y": got})
    assert a.outputs["y"].mode == "ctc" and a.changed_share == 0.0
    assert agreement({"y": ref}, {"y": got}, mode="argmax").changed_share == 1.0


def test_what_reads_as_ctc():
    assert looks_ctc([ctc_frames("hi there")[0]]) == 0
    last_blank = ctc_frames("hi there")[0][:, ::-1].copy()
    assert looks_ctc([last_blank]) == last_blank.shape[1] - 1
    logits = np.random.default_rng(0).normal(size=(6, 10))
    assert looks_ctc(list(logits)) is None             # a classifier: no sequence
    assert looks_ctc([logits]) is None                 # too few frames for a sequence
    assert looks_ctc([np.zeros((4, 4, 5))]) is None    # positions on two axes
    tags = np.eye(5)[[1, 2, 3, 4, 1, 2, 3, 4, 0]]      # a tagger: class 0 on 1 of 9
    assert looks_ctc([tags]) is None


def test_detector_background_near_ties_do_not_count_but_its_object_does():
    rng = np.random.default_rng(1)
    ref = rng.uniform(0, 0.01, size=(1, 1, 16, 16))  # background scores
    ref[0, 0, 5, 3:9] = np.linspace(0.2, 0.95, 6)    # one object's row, peak at column 8
    got = ref + rng.uniform(-0.004, 0.004, size=ref.shape)
    a = agreement({"map": ref}, {"map": got})
    o = a.outputs["map"]
    assert o.mode == "argmax" and o.changed == 0 and o.undecided > 0
    assert agreement({"map": ref}, {"map": got}, margin=0).changed_share == 1.0
    got[0, 0, 5, 2] = 0.99                           # the object's peak moves
    assert agreement({"map": ref}, {"map": got}).changed_share == 1.0


def test_non_finite_candidates_always_change_the_answer():
    ref = {"logits": np.array([[0.1, 3.0, 0.2]])}
    nan = {"logits": np.array([[np.nan, 3.0, 0.2]])}
    inf = {"logits": np.array([[0.1, np.inf, 0.2]])}
    assert agreement(ref, nan).changed_share == 1.0
    assert agreement(ref, inf).changed_share == 1.0
    ctc = ctc_frames("ab")
    bad = ctc.copy()
    bad[0, 0, 5] = np.nan
    assert agreement({"y": ctc}, {"y": bad}).changed_share == 1.0


def test_margin_must_not_be_negative():
    with pytest.raises(NpucError, match="margin"):
        agreement({"y": np.ones((1, 3))}, {"y": np.ones((1, 3))}, margin=-0.1)


scores = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(2, 7),
                   st.integers(0, 2**31 - 1))


def _pair(n, t, c, seed):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, t, c))
    return ref, ref + rng.normal(scale=rng.uniform(0, 1), size=ref.shape)


@settings(max_examples=60, deadline=None)
@given(scores, st.sampled_from(["auto", "argmax", "ctc"]))
def test_identical_outputs_never_change(shape, mode):
    ref, _ = _pair(*shape)
    a = agreement({"y": ref}, {"y": ref.copy()}, mode=mode)
    assert a.changed_share == 0.0 and a.outputs["y"].undecided == 0


@settings(max_examples=60, deadline=None)
@given(scores, st.data())
def test_a_flip_of_a_decided_position_is_always_counted(shape, data):
    n, t, c, seed = shape
    ref = np.random.default_rng(seed).uniform(0, 1, size=(n, t, c))
    i, p = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, t - 1))
    top, other = data.draw(st.permutations(range(c)))[:2]
    ref[i, p, top] = 1.0 + data.draw(st.floats(4 * MARGIN, 10))  # leads by far
    got = ref.copy()
    got[i, p, other] = ref[i, p, top] + 1.0
    assert i in agreement({"y": ref}, {"y": got}, mode="argmax").changed_samples


@settings(max_examples=60, deadline=None)
@given(scores, st.floats(0, 0.5), st.floats(0, 0.5))
def test_a_larger_margin_never_counts_more(shape, m1, m2):
    ref, got = _pair(*shape)
    lo, hi = sorted((m1, m2))
    strict = set(agreement({"y": ref}, {"y": got}, "argmax", margin=lo).changed_samples)
    loose = set(agreement({"y": ref}, {"y": got}, "argmax", margin=hi).changed_samples)
    assert loose <= strict


@settings(max_examples=60, deadline=None)
@given(scores, st.sampled_from([0.125, 0.5, 4.0, 64.0]))
def test_the_judgement_does_not_depend_on_the_output_scale(shape, factor):
    ref, got = _pair(*shape)
    a = agreement({"y": ref}, {"y": got}, "argmax")
    b = agreement({"y": ref * factor}, {"y": got * factor}, "argmax")
    assert a.changed_samples == b.changed_samples


@settings(max_examples=60, deadline=None)
@given(scores)
def test_zero_margin_is_the_literal_argmax(shape):
    ref, got = _pair(*shape)
    changed, undecided = flipped(ref, got, -1, 0.0)
    literal = ref.argmax(-1) != got.argmax(-1)
    assert np.array_equal(changed, literal) and not undecided.any()


def test_a_text_the_float_model_nearly_read_is_not_a_changed_answer():
    ref = ctc_frames("paid in full", spread=0.45)  # spaces at 0.52 against a 0.45 blank
    got = ctc_frames("paid in full", spread=0.5)   # the blank wins them: "paidinfull"
    a = agreement({"y": ref}, {"y": got})
    assert a.changed_share == 0.0 and a.outputs["y"].undecided == 1
    assert agreement({"y": ref}, {"y": got}, margin=0).changed_share == 1.0


@settings(max_examples=60, deadline=None)
@given(st.text(ALPHABET[1:], min_size=3, max_size=8), st.data())
def test_moves_within_undecided_frames_never_change_the_text(text, data):
    ref = ctc_frames(text)
    t = ref.shape[1]
    frames = data.draw(st.lists(st.integers(0, t - 1), max_size=4, unique=True))
    got = ref.copy()
    for f in frames:  # the float model was undecided there: the runner-up is near
        top = int(ref[0, f].argmax())
        other = data.draw(st.sampled_from([c for c in range(ref.shape[2]) if c != top]))
        ref[0, f, other] = ref[0, f, top] - 0.01
        got[0, f] = ref[0, f]
        got[0, f, other] = ref[0, f, top] + 0.01
    assert agreement({"y": ref}, {"y": got}).changed_share == 0.0
    assert agreement({"y": ref}, {"y": got}, mode="argmax").changed_share == 0.0


def test_a_classifier_answer_counts_however_close_the_float_scores_were():
    """One answer per sample is the answer: a near-tie of a classifier flipping changes
    it (the margin only spares the undecided positions of dense outputs)."""
    ref = np.array([[0.0, 5.0, 4.9, -3.0], [1.0, 0.0, 9.0, 2.0]])
    got = ref.copy()
    got[0, 2] = 5.1  # class 2 now beats class 1 by 0.1, the float model's lead was 0.1
    a = agreement({"y": ref}, {"y": got})
    assert a.changed_share == 0.5 and a.outputs["y"].changed_samples == [0]
    # the same near-tie at one anchor of a dense output is undecided
    dense = agreement({"y": ref[None]}, {"y": got[None]}, batch_axis=0)
    assert dense.changed_share == 0.0 and dense.outputs["y"].undecided == 1

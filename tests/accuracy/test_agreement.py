"""Answer agreement: argmax, per-position, CTC, top-k, SQNR over samples."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npuc.compiler.accuracy import agreement, answers, topk_overlap
from npuc.ir.errors import NpucError


def test_classifier_share_of_changed_answers():
    ref = {"logits": np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0], [0.0, 0.0, 5.0]])}
    got = {"logits": np.array([[1.0, 2.5, 0.0], [0.0, 3.0, 1.0], [0.0, 0.1, 5.0]])}
    a = agreement(ref, got)
    o = a.outputs["logits"]
    assert (o.mode, o.samples, o.changed, o.changed_samples) == ("argmax", 3, 1, [1])
    assert a.changed_share == pytest.approx(1 / 3)
    assert "1 of 3 samples changed" in a.summary()
    assert json.loads(json.dumps(a.to_json()))["changed"] == 1


def test_sequence_positions_and_ctc_decoding():
    # frames of 3 classes, blank = 0: "1 1 0 2" decodes to (1, 2)
    def frames(ids):
        return np.eye(3)[ids][None]  # [1, T, 3]

    ref = frames([1, 1, 0, 2])
    same_text = frames([1, 0, 0, 2])  # one frame differs, the text does not
    lost = frames([1, 1, 1, 2])       # "1 1 1 2" -> (1, 2) too
    merged = frames([1, 0, 1, 2])     # -> (1, 1, 2): a letter more
    a = agreement([{"y": ref}] * 3, [{"y": same_text}, {"y": lost}, {"y": merged}],
                  mode="ctc")
    assert a.outputs["y"].changed_samples == [2]
    b = agreement([{"y": ref}] * 3, [{"y": same_text}, {"y": lost}, {"y": merged}],
                  mode="argmax")
    assert b.outputs["y"].changed == 3
    assert b.outputs["y"].positions == pytest.approx(8 / 12)  # 1 + 1 + 2 frames differ


def test_class_axis_is_settable():
    ref = np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])  # classes along axis 0 of a sample
    got = ref.copy()
    got[0, 2, 0] = 2.0
    assert agreement({"y": ref}, {"y": got}, axis=0).outputs["y"].changed == 1
    assert agreement({"y": ref}, {"y": got}, axis=-1).outputs["y"].changed == 0


def test_ctc_answers_merge_repeats_and_drop_blank():
    scores = np.eye(4)[[0, 3, 3, 0, 3, 1]]
    assert answers(scores, "ctc", -1, blank=0) == (3, 3, 1)


def test_shapes_must_match_and_modes_are_checked():
    with pytest.raises(NpucError):
        agreement({"y": np.zeros((1, 3))}, {"y": np.zeros((1, 4))})
    with pytest.raises(NpucError):
        agreement({"y": np.zeros((1, 3))}, {"y": np.zeros((1, 3))}, mode="top1")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(2, 9), st.integers(0, 2**31 - 1))
def test_identical_outputs_agree_fully(n, classes, seed):
    x = np.random.default_rng(seed).normal(size=(n, classes))
    a = agreement({"y": x}, {"y": x.copy()})
    o = a.outputs["y"]
    assert (o.changed, o.sqnr_db, o.topk, o.positions) == (0, 200.0, 1.0, 1.0)
    assert o.cosine == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 9), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_topk_overlap_is_a_share_and_symmetric(classes, k, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(3, classes)), rng.normal(size=(3, classes))
    v = topk_overlap(a, b, k)
    assert 0.0 <= v <= 1.0
    assert v == pytest.approx(topk_overlap(b, a, k))

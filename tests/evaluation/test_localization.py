"""Tests for instrec.evaluation.localization: segment rolls and Mesaros et al. (2016) segment metrics."""
from __future__ import annotations

import math

import numpy as np
import pytest

from instrec.evaluation import localization as loc

CLASSES = ["piano", "voice", "drums"]


def test_strong_to_roll_overlap_rules():
    events = [
        ("piano", 0.5, 2.0),   # segments 0, 1; ends exactly at 2.0 so segment 2 is untouched
        ("voice", 1.2, 1.3),   # inside segment 1
        ("drums", 3.0, 3.0),   # zero length on a boundary: no segment
        ("drums", 2.5, 2.5),   # zero length inside segment 2
        ("piano", 4.5, 12.0),  # clipped to the last segment (4)
    ]
    roll = loc.strong_to_roll(events, 5, CLASSES)
    expected = np.zeros((5, 3), bool)
    expected[[0, 1, 4], 0] = True
    expected[1, 1] = True
    expected[2, 2] = True
    np.testing.assert_array_equal(roll, expected)
    assert roll.dtype == bool
    # Half-second segments: piano 0.5-2.0 covers segments 1, 2, 3.
    np.testing.assert_array_equal(loc.strong_to_roll([("piano", 0.5, 2.0)], 6, CLASSES, segment=0.5)[:, 0],
                                  [0, 1, 1, 1, 0, 0])


@pytest.mark.parametrize("event, message", [
    (("cello", 0.0, 1.0), "event instrument 'cello' is not one of the classes"),
    (("piano", 2.0, 1.0), "need finite times with 0 <= onset <= offset"),
    (("piano", -1.0, 1.0), "need finite times"),
    (("piano", 0.0, float("nan")), "need finite times"),
])
def test_strong_to_roll_errors(event, message):
    with pytest.raises(ValueError, match=message):
        loc.strong_to_roll([event], 5, CLASSES)


def test_frame_probs_to_roll_hop_096():
    # 12 frames of 0.96 s onto 10 one-second segments, piano column only.
    probs = np.zeros((12, 3))
    probs[1, 0] = 0.9    # [0.96, 1.92) -> segments 0 and 1
    probs[5, 0] = 0.7    # [4.80, 5.76) -> segments 4 and 5
    probs[9, 0] = 0.51   # [8.64, 9.60) -> segments 8 and 9
    probs[3, 0] = 0.5    # exactly the threshold: inactive (prob must be > threshold)
    probs[11, 0] = 1.0   # [10.56, 11.52) -> beyond the clip, dropped
    roll = loc.frame_probs_to_roll(probs, 10)
    np.testing.assert_array_equal(np.flatnonzero(roll[:, 0]), [0, 1, 4, 5, 8, 9])
    assert not roll[:, 1:].any()
    np.testing.assert_array_equal(np.flatnonzero(loc.frame_probs_to_roll(probs, 10, threshold=0.45)[:, 0]),
                                  [0, 1, 2, 3, 4, 5, 8, 9])


def test_frame_probs_to_roll_exact_boundaries():
    # hop 0.5: frame 1 spans [0.5, 1.0) and touches only segment 0; frame 2 [1.0, 1.5) only segment 1.
    probs = np.zeros((4, 1))
    probs[1] = 1.0
    np.testing.assert_array_equal(loc.frame_probs_to_roll(probs, 2, hop=0.5)[:, 0], [True, False])
    probs[:] = 0.0
    probs[2] = 1.0
    np.testing.assert_array_equal(loc.frame_probs_to_roll(probs, 2, hop=0.5)[:, 0], [False, True])
    # A bool array is activity as is.
    np.testing.assert_array_equal(loc.frame_probs_to_roll(probs > 0.5, 2, hop=0.5)[:, 0], [False, True])


def test_frame_probs_to_roll_errors():
    with pytest.raises(ValueError, match=r"frame_probs must be a 2-D \(T, C\) array"):
        loc.frame_probs_to_roll(np.zeros(4), 2)
    with pytest.raises(ValueError, match="frame_probs contains NaN"):
        loc.frame_probs_to_roll(np.full((2, 2), np.nan), 2)
    with pytest.raises(ValueError, match="hop and segment must be positive"):
        loc.frame_probs_to_roll(np.zeros((2, 2)), 2, hop=0)


def test_frame_agnostic_probs():
    out = loc.frame_agnostic_probs(np.array([[0.1, 0.9], [0.6, 0.2]]), 3)
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[1], [[0.6, 0.2]] * 3)
    with pytest.raises(ValueError, match="n_frames must be at least 1"):
        loc.frame_agnostic_probs(np.zeros((2, 2)), 0)


# Hand example, 4 segments x 3 classes (piano, voice, drums):
#        reference   estimate   TP FP FN | S D I
# seg0   1 0 0       1 0 0       1  0  0 | 0 0 0
# seg1   1 1 0       0 0 1       0  1  2 | 1 1 0
# seg2   0 0 0       0 1 1       0  2  0 | 0 0 2
# seg3   0 1 1       0 1 0       1  0  1 | 0 1 0
# N = 5, TP = 2, FP = 3, FN = 3, S = 1, D = 2, I = 2 -> ER = 5/5 = 1, F1 = 4/10
# piano: TP1 FP0 FN1 N2 -> ER 1/2, F1 2/3;  voice: TP1 FP1 FN1 N2 -> ER 1, F1 1/2
# drums: TP0 FP2 FN1 N1 -> ER 3, F1 0;      class-wise F1 7/18, ER 3/2
REF = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 1]], bool)
EST = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0]], bool)


def test_segment_metrics_hand():
    res = loc.segment_metrics(REF, EST, CLASSES)
    assert (res["n_ref"], res["n_est"], res["tp"], res["fp"], res["fn"]) == (5, 5, 2, 3, 3)
    assert (res["substitutions"], res["deletions"], res["insertions"]) == (1, 2, 2)
    assert res["er"] == pytest.approx(1.0)
    assert res["substitution_rate"] == pytest.approx(1 / 5)
    assert res["deletion_rate"] == pytest.approx(2 / 5) and res["insertion_rate"] == pytest.approx(2 / 5)
    assert res["f1"] == pytest.approx(0.4)
    assert res["precision"] == pytest.approx(0.4) and res["recall"] == pytest.approx(0.4)
    assert res["n_segments"] == 4
    piano, voice, drums = res["per_class"]
    assert [r["instrument"] for r in res["per_class"]] == CLASSES
    assert (piano["er"], piano["f1"]) == (pytest.approx(0.5), pytest.approx(2 / 3))
    assert (voice["er"], voice["f1"]) == (pytest.approx(1.0), pytest.approx(0.5))
    assert (drums["er"], drums["f1"]) == (pytest.approx(3.0), 0.0)
    assert (drums["tp"], drums["fp"], drums["fn"], drums["n_ref"]) == (0, 2, 1, 1)
    assert drums["insertion_rate"] == pytest.approx(2.0) and drums["deletion_rate"] == pytest.approx(1.0)
    assert res["class_f1"] == pytest.approx(7 / 18)
    assert res["class_er"] == pytest.approx(1.5)


def test_segment_metrics_eval_mask_and_clips():
    # Without drums: seg0 TP; seg1 FN2 -> D2; seg2 FP1 -> I1; seg3 TP. N=4, ER=3/4, F1=4/7.
    res = loc.segment_metrics(REF, EST, CLASSES, eval_mask=np.array([True, True, False]))
    assert (res["tp"], res["fp"], res["fn"], res["n_ref"]) == (2, 1, 2, 4)
    assert (res["substitutions"], res["deletions"], res["insertions"]) == (0, 2, 1)
    assert res["er"] == pytest.approx(3 / 4) and res["f1"] == pytest.approx(4 / 7)
    assert [r["instrument"] for r in res["per_class"]] == ["piano", "voice"]
    # Splitting the segments over two clips (list or 3-D stack) changes nothing.
    split = loc.segment_metrics([REF[:2], REF[2:]], [EST[:2], EST[2:]], CLASSES)
    stacked = loc.segment_metrics(np.stack([REF[:2], REF[2:]]), np.stack([EST[:2], EST[2:]]), CLASSES)
    whole = loc.segment_metrics(REF, EST, CLASSES)
    for key in ("er", "f1", "tp", "fp", "fn", "substitutions", "deletions", "insertions", "n_segments"):
        assert split[key] == whole[key] == stacked[key]


def test_segment_metrics_empty_reference():
    res = loc.segment_metrics(np.zeros((3, 3), bool), np.zeros((3, 3), bool), CLASSES)
    assert math.isnan(res["er"]) and res["f1"] == 0.0 and math.isnan(res["class_er"])
    assert all(math.isnan(r["er"]) for r in res["per_class"])
    perfect = loc.segment_metrics(REF, REF, CLASSES)
    assert perfect["er"] == 0.0 and perfect["f1"] == 1.0 and perfect["class_er"] == 0.0


@pytest.mark.parametrize("ref, est, mask, message", [
    (REF, EST[:3], None, r"clip 0: reference roll \(4, 3\) and estimate \(3, 3\)"),
    ([REF], [EST, EST], None, "got 1 reference rolls but 2 estimated rolls"),
    (REF[:, :2], EST[:, :2], None, r"must both be \(n_segments, 3\)"),
    (REF, EST, np.array([1, 1, 0]), r"eval_mask must be a bool array of shape \(3,\)"),
    (REF * 2, EST, None, r"ref_rolls\[0\] must be boolean"),
    ([REF[0]], [EST[0]], None, r"ref_rolls\[0\] must be a 2-D"),
])
def test_segment_metrics_errors(ref, est, mask, message):
    with pytest.raises(ValueError, match=message):
        loc.segment_metrics(ref, est, CLASSES, eval_mask=mask)


# End to end, 4 s clips, classes piano/voice, hop 0.96:
# clip a: piano 0-2 s (segments 0, 1). Piano frame 0 [0, 0.96) -> segment 0 (TP), segment 1 missed (D);
#         voice frame 3 [2.88, 3.84) -> segments 2, 3 (I, I).
# clip b: no events, all frames 0.1 -> nothing.  N=2 TP=1 FP=2 FN=1 -> ER 3/2, F1 2/5.
STRONG = {"a": [("piano", 0.0, 2.0)], "b": []}
FRAMES = {"a": np.array([[0.9, 0.0], [0.2, 0.0], [0.1, 0.0], [0.1, 0.8]]), "b": np.full((4, 2), 0.1)}


def test_evaluate_localization_hand():
    res = loc.evaluate_localization(STRONG, FRAMES, ["piano", "voice"], clip_seconds=4.0)
    assert res["n_clips"] == 2 and res["n_segments"] == 8
    assert (res["tp"], res["fp"], res["fn"]) == (1, 2, 1)
    assert res["er"] == pytest.approx(1.5) and res["f1"] == pytest.approx(0.4)
    only_piano = loc.evaluate_localization(STRONG, FRAMES, ["piano", "voice"], clip_seconds=4.0,
                                           eval_classes=["piano"])
    assert only_piano["er"] == pytest.approx(0.5) and only_piano["f1"] == pytest.approx(2 / 3)
    assert [r["instrument"] for r in only_piano["per_class"]] == ["piano"]


def test_frame_agnostic_baseline_hand():
    # a: piano 0.9 -> piano in all 4 segments (TP2, I2); b: voice 0.6 -> voice in 4 segments (I4).
    # N=2, TP=2, FP=6, FN=0 -> ER = 6/2 = 3, F1 = 4/10.
    clip = {"a": np.array([0.9, 0.3]), "b": np.array([0.2, 0.6])}
    res = loc.evaluate_frame_agnostic(STRONG, clip, ["piano", "voice"], clip_seconds=4.0)
    assert (res["tp"], res["fp"], res["fn"], res["insertions"]) == (2, 6, 0, 6)
    assert res["er"] == pytest.approx(3.0) and res["f1"] == pytest.approx(0.4)
    # Same as repeating clip probabilities over four 0.96 s frames (they reach segment 3).
    keys = list(clip)
    frames = loc.frame_agnostic_probs(np.stack([clip[k] for k in keys]), 4)
    via_frames = loc.evaluate_localization(STRONG, dict(zip(keys, frames)), ["piano", "voice"], clip_seconds=4.0)
    assert {k: v for k, v in via_frames.items() if k != "per_class"} == \
        {k: v for k, v in res.items() if k != "per_class"}


def test_evaluate_localization_errors():
    with pytest.raises(ValueError, match="no frame probabilities for clip 'b'"):
        loc.evaluate_localization(STRONG, {"a": FRAMES["a"]}, ["piano", "voice"], clip_seconds=4.0)
    with pytest.raises(ValueError, match=r"clip 'a': frame probabilities must be \(T, 2\)"):
        loc.evaluate_localization(STRONG, {"a": np.zeros((4, 3)), "b": FRAMES["b"]}, ["piano", "voice"])
    with pytest.raises(ValueError, match=r"eval_classes \['cello'\] are not among the classes"):
        loc.evaluate_localization(STRONG, FRAMES, ["piano", "voice"], eval_classes=["cello"])
    with pytest.raises(ValueError, match="no clip probabilities for clip 'a'"):
        loc.evaluate_frame_agnostic(STRONG, {}, ["piano", "voice"])
    with pytest.raises(ValueError, match="clip_seconds and segment must be positive"):
        loc.n_segments_for(0.0)
    assert loc.n_segments_for(10.0) == 10 and loc.n_segments_for(9.6) == 10


def test_segment_metrics_against_loop_reference():
    """Random rolls against a plain per-segment loop over the definitions."""
    rng = np.random.default_rng(0)
    refs = [rng.random((10, 3)) < 0.3 for _ in range(5)]
    ests = [rng.random((10, 3)) < 0.3 for _ in range(5)]
    s = d = i = n = tp = fp = fn = 0
    for ref, est in zip(refs, ests):
        for r, e in zip(ref, est):
            seg_fn = sum(1 for a, b in zip(r, e) if a and not b)
            seg_fp = sum(1 for a, b in zip(r, e) if b and not a)
            s, d, i = s + min(seg_fn, seg_fp), d + max(0, seg_fn - seg_fp), i + max(0, seg_fp - seg_fn)
            n, tp = n + int(r.sum()), tp + int((r & e).sum())
            fp, fn = fp + seg_fp, fn + seg_fn
    res = loc.segment_metrics(refs, ests, CLASSES)
    assert res["er"] == pytest.approx((s + d + i) / n)
    assert res["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert (res["substitutions"], res["deletions"], res["insertions"]) == (s, d, i)


def test_per_class_table_has_hand_computed_segment_scores_per_instrument():
    # One 4-s clip, 1-s segments, frames of 1 s. Reference: piano in segments 0-1, voice in 2-3.
    strong = {"a": [("piano", 0.0, 2.0), ("voice", 2.0, 4.0)]}
    frames = np.zeros((4, 3))
    frames[[0, 2], 0] = 0.9   # piano: segment 0 right (TP), 1 missed (FN), 2 wrong (FP)
    frames[[2, 3], 1] = 0.8   # voice: both right
    frames[3, 2] = 0.7        # drums: one false alarm, no reference
    level = loc.evaluate_localization(strong, {"a": frames}, CLASSES, clip_seconds=4.0, hop=1.0)
    agnostic = loc.evaluate_frame_agnostic(strong, {"a": frames.max(axis=0)}, CLASSES, clip_seconds=4.0)
    rows = loc.per_class_table({"frame_level": level, "frame_agnostic": agnostic, "absent": None})
    assert [(r["method"], r["instrument"]) for r in rows] == [
        ("frame_level", "piano"), ("frame_level", "voice"), ("frame_level", "drums"),
        ("frame_agnostic", "piano"), ("frame_agnostic", "voice"), ("frame_agnostic", "drums")]
    piano, voice, drums = rows[:3]
    assert (piano["tp"], piano["fp"], piano["fn"], piano["n_ref"], piano["n_est"]) == (1, 1, 1, 2, 2)
    assert piano["f1"] == pytest.approx(2 / 4) and piano["er"] == pytest.approx(2 / 2)
    assert piano["deletion_rate"] == pytest.approx(0.5) and piano["insertion_rate"] == pytest.approx(0.5)
    assert voice["f1"] == 1.0 and voice["er"] == 0.0 and voice["precision"] == 1.0 and voice["recall"] == 1.0
    assert drums["fp"] == 1 and drums["f1"] == 0.0 and math.isnan(drums["er"])
    # Frame-agnostic: every present instrument claims all 4 segments.
    a_piano, a_voice, a_drums = rows[3:]
    assert (a_piano["tp"], a_piano["fp"]) == (2, 2) and a_piano["f1"] == pytest.approx(4 / 6)
    assert (a_voice["tp"], a_voice["fp"]) == (2, 2) and a_drums["fp"] == 4
    # The table is per instrument: the clip-level answer (all three "present") cannot tell these apart.
    assert piano["f1"] != a_piano["f1"] and voice["f1"] != a_voice["f1"]

"""The per-second policy (gate, median, threshold, gap filling, minimum length, duration rule)
against hand-computed frames; the segment metrics against sed_eval; PSDS on cases with known values."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from instrec.evaluation.frame_policy import (decide_frames, drop_short, file_presence, fill_gaps, overlap_matrix,
                                             policy_from_json, policy_to_json, tune_frame_policy)
from instrec.evaluation.localization import evaluate_localization


def col(*bits):
    return np.array(bits, dtype=bool)[:, None]


def test_gap_filling_and_minimum_length_by_hand():
    a = col(1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1)
    assert fill_gaps(a, 1)[:, 0].astype(int).tolist() == [1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 1]
    assert fill_gaps(a, 2)[:, 0].astype(int).tolist() == [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1]
    assert fill_gaps(a, 0).tolist() == a.tolist()
    # A gap at the edge is not between two active frames: never filled.
    assert fill_gaps(col(0, 1, 1, 0), 2)[:, 0].astype(int).tolist() == [0, 1, 1, 0]
    assert drop_short(a, 2)[:, 0].astype(int).tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert drop_short(a, 3).sum() == 0 and drop_short(a, 1).tolist() == a.tolist()


def test_decide_frames_gate_median_threshold_and_smoothing_by_hand():
    # Two instruments, 8 frames. Instrument 0: a one-frame dip at t=3 and a one-frame blip at t=6.
    p = np.array([[0.9, 0.9, 0.8, 0.1, 0.9, 0.2, 0.7, 0.1],
                  [0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]]).T
    gate = np.array([True, False])  # the clip answer: instrument 1 not present
    raw = decide_frames(p, gate, [0.5, 0.5])
    assert raw[:, 0].astype(int).tolist() == [1, 1, 1, 0, 1, 0, 1, 0] and not raw[:, 1].any()
    # Median over 3 frames: [0.9, 0.9, 0.8, 0.8, 0.2, 0.7, 0.2, 0.1] (edges repeat the end frames).
    med = decide_frames(p, gate, [0.5, 0.5], median_frames=3)
    assert med[:, 0].astype(int).tolist() == [1, 1, 1, 1, 0, 1, 0, 0]
    # Fill 1-frame gaps, then drop events shorter than 2 frames.
    both = decide_frames(p, gate, [0.5, 0.5], fill_gap_frames=1, min_event_frames=2)
    assert both[:, 0].astype(int).tolist() == [1, 1, 1, 1, 1, 1, 1, 0]
    short = decide_frames(p, gate, [0.5, 0.5], min_event_frames=2)
    assert short[:, 0].astype(int).tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    # -inf: the gate alone (the clip answer spread); NaN (never learned): never active.
    spread = decide_frames(np.where(np.arange(2) == 1, np.nan, p), np.array([True, True]), [-math.inf, -math.inf])
    assert spread[:, 0].all() and not spread[:, 1].any()


def test_a_file_shorter_than_the_minimum_event_holds_an_event_that_fills_it():
    # A 2-frame note against a 3-frame minimum: before the cap nothing could ever be active.
    p = np.array([[0.9, 0.8], [0.9, 0.2]]).T  # instrument 0 plays both frames, instrument 1 one
    note = decide_frames(p, np.array([True, True]), [0.5, 0.5], min_event_frames=3)
    assert note[:, 0].tolist() == [True, True] and not note[:, 1].any()
    # A longer file keeps the full minimum: the same 2 active frames in 4 are dropped.
    longer = decide_frames(np.vstack([p, [[0.1, 0.1], [0.1, 0.1]]]), np.array([True, True]), [0.5, 0.5],
                           min_event_frames=3)
    assert not longer.any()


def test_file_presence_adds_up_active_seconds():
    active = np.zeros((12, 3), bool)
    active[[0, 1, 5], 0] = True   # 3 frames = 2.88 s in two stretches
    active[[2, 3], 1] = True      # 1.92 s
    assert file_presence(active, 2.0).tolist() == [True, False, False]
    assert file_presence(active, 1.9).tolist() == [True, True, False]
    assert file_presence(active, 2.88).tolist() == [True, False, False]  # exactly the rule's length counts
    assert file_presence(active, 0.0).tolist() == [True, True, True]


def test_tuning_finds_the_threshold_that_separates_playing_frames():
    # Instrument "a" plays in the first 5 s of each clip; its frame probability is 0.7 there and 0.35 after.
    # Instrument "b" plays all clip long at 0.3 per frame: only the gate alone (-inf) or <= 0.2 keeps it.
    n, t = 6, 10
    frames = np.zeros((n, t, 2))
    frames[:, :5, 0], frames[:, 5:, 0], frames[:, :, 1] = 0.7, 0.35, 0.3
    strong = {f"k{i}": [("a", 0.0, 4.8), ("b", 0.0, 10.0)] for i in range(n)}
    gate = np.ones((n, t, 2), bool)
    policy = tune_frame_policy(strong, list(strong), frames, gate, ["a", "b"], smoothings=[(1, 0, 1)])
    assert 0.35 <= policy["frame_thresholds"][0] < 0.7
    assert policy["frame_thresholds"][1] < 0.3
    assert policy["validation_f1"] == pytest.approx(1.0)
    # The tuned policy's F1 equals the segment F1 of its decisions scored independently.
    active = decide_frames(frames, gate, policy["frame_thresholds"])
    scores = evaluate_localization(strong, dict(zip(strong, active)), ["a", "b"])
    assert scores["f1"] == pytest.approx(policy["validation_f1"])
    assert policy_from_json(policy_to_json(policy))["frame_thresholds"] == policy["frame_thresholds"]
    assert policy_to_json({**policy, "frame_thresholds": [-math.inf, 0.2]})["frame_thresholds"] == [None, 0.2]


def test_overlap_matrix_maps_frames_as_the_roll_does():
    m = overlap_matrix(10, 10)
    assert m[0].tolist() == [True, True] + [False] * 8        # segment 0: frames 0 (0-0.96) and 1 (0.96-1.92)
    assert m[9].tolist() == [False] * 9 + [True]              # segment 9: frame 9 (8.64-9.6) only


def _sed_eval_scores(strong, est, classes, seconds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sed_eval
        from dcase_util.containers import MetaDataContainer
    metrics = sed_eval.sound_event.SegmentBasedMetrics(classes, time_resolution=1.0)
    for key in strong:
        ref = MetaDataContainer([{"filename": key, "event_label": c, "onset": a, "offset": b}
                                 for c, a, b in strong[key]])
        sys_ = MetaDataContainer([{"filename": key, "event_label": c, "onset": a, "offset": b} for c, a, b in est[key]])
        metrics.evaluate(ref, sys_, evaluated_length_seconds=seconds)
    return metrics.results_overall_metrics(), metrics.results_class_wise_metrics()


def test_segment_metrics_equal_sed_eval():
    pytest.importorskip("sed_eval")
    classes = ["piano", "violin", "voice"]
    strong = {"c1": [("piano", 0.0, 3.5), ("violin", 2.2, 6.0), ("voice", 7.0, 10.0)],
              "c2": [("violin", 0.0, 10.0)], "c3": []}
    est = {"c1": [("piano", 1.0, 4.0), ("voice", 3.0, 5.0), ("voice", 8.0, 9.0)],
           "c2": [("violin", 0.0, 5.0), ("piano", 5.0, 7.0)], "c3": [("voice", 0.0, 2.0)]}
    # Our estimate as 1-s "frames" of activity (hop 1 s), so both tools see the same events.
    frames = {}
    for key, events in est.items():
        act = np.zeros((10, 3), bool)
        for c, a, b in events:
            act[int(math.floor(a)):int(math.ceil(b)), classes.index(c)] = True
        frames[key] = act
    ours = evaluate_localization(strong, frames, classes, clip_seconds=10.0, hop=1.0)
    overall, class_wise = _sed_eval_scores(strong, est, classes, 10.0)
    assert ours["f1"] == pytest.approx(overall["f_measure"]["f_measure"])
    assert ours["precision"] == pytest.approx(overall["f_measure"]["precision"])
    assert ours["recall"] == pytest.approx(overall["f_measure"]["recall"])
    assert ours["er"] == pytest.approx(overall["error_rate"]["error_rate"])
    assert ours["substitution_rate"] == pytest.approx(overall["error_rate"]["substitution_rate"])
    assert ours["deletion_rate"] == pytest.approx(overall["error_rate"]["deletion_rate"])
    assert ours["insertion_rate"] == pytest.approx(overall["error_rate"]["insertion_rate"])
    for row in ours["per_class"]:
        theirs = class_wise[row["instrument"]]
        assert row["f1"] == pytest.approx(theirs["f_measure"]["f_measure"], nan_ok=True)
        assert row["er"] == pytest.approx(theirs["error_rate"]["error_rate"], nan_ok=True)


def test_psds_is_one_for_perfect_scores_and_zero_for_silence():
    pytest.importorskip("sed_scores_eval")
    from instrec.evaluation.sed_scores import psds

    hop, t = 1.0, 10
    strong = {"a": [("x", 0.0, 4.0)], "b": [("y", 5.0, 10.0)], "c": [("x", 2.0, 9.0), ("y", 0.0, 3.0)]}
    scores = np.zeros((3, t, 2))
    for i, events in enumerate(strong.values()):
        for inst, a, b in events:
            scores[i, int(a):int(b), "xy".index(inst)] = 1.0
    assert psds(strong, list(strong), scores, ["x", "y"], 10.0, hop=hop) == pytest.approx(1.0)
    assert psds(strong, list(strong), np.zeros_like(scores), ["x", "y"], 10.0, hop=hop) == pytest.approx(0.0)
    # y found in one of its two clips, without false alarms: TPR x = 1, y = 0.5 at every eFPR, and
    # PSDS (alpha_st = 1) = mean - std over classes = 0.75 - 0.25.
    scores[2, :, 1] = 0.0
    assert psds(strong, list(strong), scores, ["x", "y"], 10.0, hop=hop) == pytest.approx(0.5)


def test_psds_leaves_out_instruments_that_never_sound():
    pytest.importorskip("sed_scores_eval")
    from instrec.evaluation.sed_scores import psds

    strong = {"a": [("x", 0.0, 4.0)], "b": [("y", 5.0, 10.0)]}
    scores = np.zeros((2, 10, 3))
    scores[0, :4, 0] = scores[1, 5:, 1] = 1.0
    scores[:, :, 2] = 0.9  # z never sounds: its false alarms cannot be scored per class, it is left out
    assert psds(strong, list(strong), scores, ["x", "y", "z"], 10.0, hop=1.0) == pytest.approx(1.0)
    assert math.isnan(psds(strong, ["a"], scores[:1], ["x", "y", "z"], 10.0, hop=1.0))  # one sounding class

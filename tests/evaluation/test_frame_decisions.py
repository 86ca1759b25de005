"""Clip-gated frame decisions (instrec.evaluation.frame_decisions) against hand-made rolls."""
from __future__ import annotations

import numpy as np
import pytest

from instrec.evaluation.frame_decisions import gated_activity, score_gate, tune_clip_threshold, tune_gate
from instrec.evaluation.frame_policy import median_smooth
from instrec.evaluation.localization import evaluate_frame_agnostic

CLASSES = ("a", "b")


def test_median_smooth_by_hand():
    x = np.array([0, 1, 0, 0, 1, 1], dtype=float).reshape(1, 6, 1)
    assert median_smooth(x, 3).ravel().tolist() == [0, 0, 0, 0, 1, 1]
    assert median_smooth(x, 1) is x
    with pytest.raises(ValueError, match="odd number"):
        median_smooth(x, 2)


def test_gate_needs_the_clip_decision():
    frames = np.array([[[0.9, 0.9], [0.1, 0.9]]])  # (1, 2, 2)
    clip = np.array([[0.8, 0.3]])
    got = gated_activity(frames, clip, 0.5)
    assert got[0].tolist() == [[True, False], [False, False]]  # b is never active: its clip is below 0.5
    assert gated_activity(frames, clip, -np.inf)[0].tolist() == [[True, False], [True, False]]
    with pytest.raises(ValueError, match="do not match"):
        gated_activity(frames, clip[:, :1], 0.5)


def _clips():
    """Two 10-s clips of 10 frames: 'a' plays 0-5 s in k0, 'b' all of k1; frames follow 'a'."""
    strong = {"k0": [("a", 0.0, 5.0)], "k1": [("b", 0.0, 10.0)]}
    frames = np.full((2, 10, 2), 0.05)
    frames[0, :5, 0] = 0.8           # a, first half of k0
    frames[1, :, 1] = 0.3            # b, weak but everywhere in k1
    clip = np.array([[0.9, 0.1], [0.2, 0.7]])
    return strong, ["k0", "k1"], frames, clip


def test_without_a_frame_threshold_the_gate_is_the_frame_agnostic_baseline():
    strong, keys, frames, clip = _clips()
    gate = score_gate(strong, keys, frames, clip, CLASSES, -np.inf)
    base = evaluate_frame_agnostic(strong, dict(zip(keys, clip)), CLASSES)
    assert gate["f1"] == pytest.approx(base["f1"]) and gate["er"] == pytest.approx(base["er"])
    # by hand: 15 reference segments; the baseline claims 10 + 10, 5 of them wrongly (k0, s 5-9)
    assert base["f1"] == pytest.approx(2 * 15 / (2 * 15 + 5))


def test_tuning_finds_the_frame_threshold_that_localises():
    strong, keys, frames, clip = _clips()
    thr, width, clip_thr, f1 = tune_gate(strong, keys, frames, clip, CLASSES, thresholds=(-np.inf, 0.2, 0.5),
                                         widths=(1,), clip_thresholds=(0.5, 0.8))
    # 0.2 keeps a's first half and all of b (0.3): every segment right; 0.5 would lose b; a clip
    # threshold of 0.8 would lose b's clip
    assert (thr, width, clip_thr) == (0.2, 1, 0.5)
    assert f1 == pytest.approx(1.0)


def test_clip_threshold_tuning_is_the_fair_baseline():
    strong, keys, _, clip = _clips()
    # at 0.5 both clips are called for one instrument each; at 0.8 only k0's 'a' (0.9) survives
    thr, f1 = tune_clip_threshold(strong, keys, clip, CLASSES, 10, thresholds=(0.5, 0.8))
    assert thr == 0.5 and f1 == pytest.approx(2 * 15 / (2 * 15 + 5))
    thr, f1 = tune_clip_threshold(strong, keys, clip, CLASSES, 10, thresholds=(0.8,))
    # 10 segments claimed for 'a' in k0 (5 right), b's 10 missed: TP 5, FP 5, FN 10
    assert thr == 0.8 and f1 == pytest.approx(2 * 5 / (2 * 5 + 5 + 10))

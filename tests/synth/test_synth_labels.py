"""Strong, weak and partial labels (statistics checked on composed clips, without rendering)."""
from __future__ import annotations

import io

import numpy as np
import pretty_midi
import pytest

from instrec.classes import OPENMIC_CLASSES
from instrec.synth import gm
from instrec.synth.labels import (
    calibrate_positive_prob,
    label_corpus,
    merge_intervals,
    notes_by_class,
    partial_labels,
    release_of,
    strong_labels,
    weak_truth,
)
from instrec.synth.soundfont import load_soundfont
from instrec.synth.stats import label_statistics
from instrec.synth.worker import STREAM_LABELS, clip_rng, compose_clip

N_CLIPS = 240


def test_merge_intervals_bridges_short_gaps_and_clips():
    got = merge_intervals([(2.1, 2.5), (0.0, 1.0), (1.2, 1.5), (1.75, 1.8), (9.9, 11.0), (-0.5, 0.1)], 10.0,
                          release=0.0, merge_gap=0.25)
    # 1.5 -> 1.75 is exactly the gap: kept apart; 1.0 -> 1.2 bridged; clipped to [0, 10]
    assert got == [(0.0, 1.5), (1.75, 1.8), (2.1, 2.5), (9.9, 10.0)]
    assert merge_intervals([(1.0, 1.2), (1.5, 2.0)], 10.0, release=0.2) == [(1.0, 2.2)]
    assert merge_intervals([], 10.0) == []


def test_release_and_weak_truth_threshold():
    assert release_of("drums", True) == 0.0 and release_of("piano", False) > 0.0
    assert release_of("mallet_percussion", False) > release_of("piano", False)
    strong = {"piano": [(0.0, 0.6), (2.0, 2.4)], "violin": [(0.0, 0.999)], "bass": [(3.0, 4.0)]}
    truth = weak_truth(strong, ["piano", "violin", "bass", "flute"], min_seconds=1.0)
    assert truth.tolist() == [True, False, True, False]


def test_partial_labels_of_one_clip():
    present = np.array([True, True, False, False, False, False])
    candidates = np.array([True, True, True, True, True, False])
    for seed in range(200):
        y, m = partial_labels(np.random.default_rng(seed), present, candidates, 3, 0.5, disagreement=True)
        assert m.sum() == 3 and not m[5]
        assert (y[~m] == 0).all()
        assert (y[m & present] >= 0.6).all() and (y[m & ~present] <= 0.4).all()
        y2, m2 = partial_labels(np.random.default_rng(seed), present, candidates, 3, 0.5, disagreement=False)
        assert np.array_equal(m, m2) and set(np.unique(y2[m2])) <= {0.0, 1.0}
        assert np.array_equal(y2[m2], (y[m] >= 0.5).astype(np.float32))
    # pools run out: asking for more positives than exist gives negatives, never repeats
    y, m = partial_labels(np.random.default_rng(0), present, candidates, 5, 1.0, disagreement=False)
    assert m.sum() == 5 and y.sum() == 2


def test_calibration_hits_the_target_when_reachable():
    pools = [(1, 17, 2), (3, 15, 2), (0, 18, 1), (5, 13, 3)] * 10
    p = calibrate_positive_prob(pools, 0.43)
    assert 0.0 < p < 1.0
    assert calibrate_positive_prob([(0, 18, 2)], 0.43) == 1.0  # unreachable: ask for positives always
    assert calibrate_positive_prob([(18, 0, 2)], 0.43) == 0.0


@pytest.fixture(scope="module")
def composed():
    presets = load_soundfont(None).preset_keys
    return presets, [compose_clip(11, i, presets)[1] for i in range(N_CLIPS)]


def _label_corpus(composed, labels_per_clip, positive_fraction, disagreement=True):
    presets, strong = composed
    classes = list(OPENMIC_CLASSES)
    candidates = np.array([c in gm.renderable_classes(presets) for c in classes])
    rngs = [clip_rng(11, i, STREAM_LABELS) for i in range(len(strong))]
    lab = label_corpus(strong, classes, candidates, rngs, labels_per_clip, positive_fraction, disagreement)
    y, m, present = lab["y_true"], lab["y_mask"], lab["present"]
    assert np.array_equal(present, np.stack([weak_truth(s, classes) for s in strong]) & candidates)
    return y, m, present, label_statistics(y, m, present, lab["sounding"], classes)


@pytest.mark.parametrize("per_clip, fraction", [(2.0, 0.43), (3.0, 0.3), (1.0, 0.6)])
def test_label_statistics_match_the_request(composed, per_clip, fraction):
    y, m, present, stats = _label_corpus(composed, per_clip, fraction)
    assert stats["labelled_per_clip"] == pytest.approx(per_clip, abs=0.15)
    assert stats["positive_fraction"] == pytest.approx(fraction, abs=0.06)
    assert m.sum(axis=1).min() >= 1
    positives = m & (y >= 0.5)
    assert np.array_equal(positives, m & present)  # disagreement never crosses 0.5
    for cls in ("mandolin", "ukulele"):  # TimGM6mb has neither: never labelled
        j = OPENMIC_CLASSES.index(cls)
        assert not m[:, j].any() and stats["per_class"][cls]["sounding"] == 0
    assert 0 < stats["doubted_pairs"] < 0.35 * stats["labelled_pairs"]


def test_brief_instruments_can_be_labelled_negative(composed):
    y, m, present, stats = _label_corpus(composed, 2.0, 0.43)
    brief = sum(v["brief"] for v in stats["per_class"].values())
    assert brief > 0 and stats["present_per_clip"] < stats["sounding_per_clip"]


def test_strong_labels_equal_those_recomputed_from_the_midi_file():
    presets = load_soundfont(None).preset_keys
    for i in range(40):
        piece, strong = compose_clip(5, i, presets)
        pm = pretty_midi.PrettyMIDI(io.BytesIO(piece.midi_bytes()))
        again = strong_labels(notes_by_class(pm.instruments), 10.0)
        assert set(again) == set(strong)
        for cls, intervals in strong.items():
            assert np.allclose(np.array(again[cls]), np.array(intervals), atol=0.0015), (i, cls)


def test_disagreement_only_softens_values(composed):
    y_soft, m_soft, _, _ = _label_corpus(composed, 2.0, 0.43, disagreement=True)
    y_hard, m_hard, _, _ = _label_corpus(composed, 2.0, 0.43, disagreement=False)
    assert np.array_equal(m_soft, m_hard)
    assert set(np.unique(y_hard[m_hard])) == {0.0, 1.0}
    assert np.array_equal(y_hard[m_hard], (y_soft[m_soft] >= 0.5).astype(np.float32))
    assert not np.array_equal(y_soft, y_hard)

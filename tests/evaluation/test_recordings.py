"""Scores on labelled recordings, against values worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from instrec._io import InstrecError
from instrec.evaluation.recordings import read_recording_labels, score_recordings

CLASSES = ["flute", "piano", "voice"]


def test_scores_match_hand_computed_values():
    truth = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1], [1, 0, 0]], bool)
    probs = np.array([[0.9, 0.2, 0.1],   # top flute: right
                      [0.7, 0.6, 0.0],   # top flute: wrong
                      [0.1, 0.3, 0.8],   # top voice: right (voice sounds)
                      [0.4, 0.5, 0.2]])  # top piano: wrong
    present = probs > 0.45
    s = score_recordings(truth, probs, present, CLASSES)
    assert s["top1"] == pytest.approx(0.5)
    # flute: positives rows 0, 3; scores 0.9 (pos), 0.7 (neg), 0.4 (pos), 0.1 -> AP = (1/1 + 2/3) / 2
    # piano: positives rows 1, 2; scores 0.6 (pos), 0.5 (neg), 0.3 (pos), 0.2 -> AP = (1 + 2/3) / 2
    # voice: positive row 2 with the top score -> AP = 1
    aps = {r["instrument"]: r["ap"] for r in s["per_class"]}
    assert aps == pytest.approx({"flute": (1 + 2 / 3) / 2, "piano": (1 + 2 / 3) / 2, "voice": 1.0})
    assert s["mean_ap"] == pytest.approx(np.mean([(1 + 2 / 3) / 2, (1 + 2 / 3) / 2, 1.0]))
    # present: row 0 flute; row 1 flute, piano; row 2 voice; row 3 piano -> wrong: (1, flute), (3, piano)
    assert s["false_positives_per_file"] == pytest.approx(2 / 4)
    assert s["recall"] == pytest.approx(3 / 5)
    flute = s["per_class"][0]
    assert (flute["precision"], flute["recall"]) == pytest.approx((0.5, 0.5))


def test_instruments_that_never_sound_are_left_out_of_the_mean():
    truth = np.array([[1, 0, 0], [1, 0, 0]], bool)
    probs = np.array([[0.2, 0.9, 0.0], [0.8, 0.1, 0.0]])
    s = score_recordings(truth, probs, probs > 0.5, CLASSES)
    assert [r["instrument"] for r in s["per_class"]] == ["flute"]
    assert s["mean_ap"] == pytest.approx(1.0) and s["top1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="must all be"):
        score_recordings(truth, probs[:1], probs[:1] > 0.5, CLASSES)


def test_labels_file_is_parsed_and_checked(tmp_path):
    (tmp_path / "labels.csv").write_text("path,seconds,openmic_present\na.flac,3,flute\nsub/b.wav,4,\"piano,voice\"\n")
    files, truth = read_recording_labels(tmp_path / "labels.csv", CLASSES)
    assert files == [tmp_path / "a.flac", tmp_path / "sub" / "b.wav"]
    assert truth.tolist() == [[True, False, False], [False, True, True]]
    (tmp_path / "bad.csv").write_text("path,openmic_present\na.flac,tuba\n")
    with pytest.raises(InstrecError, match=r"bad.csv: line 2: no instrument or unknown instrument \['tuba'\]"):
        read_recording_labels(tmp_path / "bad.csv", CLASSES)

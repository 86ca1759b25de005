"""The pieces of the demo's report: the clip verdicts, the trivial-tagger floor, the heat map."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from conftest import TINY_CLASSES, make_tiny_dataset

from instrec.data.openmic import load_split
from instrec.pipelines.demo_report import clip_rows, heat_map, trivial_macro_f1
from instrec.tagging.predict import FileTags, TagResults


def _results():
    frames = np.array([[0.9, 0.2, 0.1, np.nan], [0.8, 0.7, 0.1, np.nan]])
    tags = FileTags("clip.wav", np.array([0.9, 0.7, 0.1, np.nan]), np.array([True, True, False, False]), 2, 1,
                    "single window", frames, None, frame_present=frames > 0.5)
    return TagResults(TINY_CLASSES, [tags], [], np.array([0.5, 0.6, 0.5, 0.5]), np.array([True, True, True, False]),
                      "tuned", "tuned: per instrument")


def test_clip_rows_say_what_sounds_against_what_was_heard():
    events = [("gamma", 1.0, 1.5), ("alpha", 0.0, 2.0), ("gamma", 0.0, 0.5), ("delta", 0.0, 1.0)]
    rows = clip_rows(_results(), events)
    assert rows[:3] == [["alpha", "0.0-2.0", 0.9, 0.5, "heard"], ["beta", "-", pytest.approx(0.7), 0.6, "false alarm"],
                        ["gamma", "0.0-0.5, 1.0-1.5", pytest.approx(0.1), 0.5, "missed"]]
    assert rows[3][0] == "delta" and np.isnan(rows[3][2]) and rows[3][4] == "not learned"


def test_trivial_macro_f1_is_the_all_present_tagger_by_hand(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n=80)
    test = load_split(data, "test")
    f1 = []
    for c in range(len(TINY_CLASSES)):
        labelled = test.Y_mask[:, c]
        pos = int((test.Y_true[labelled, c] >= 0.5).sum())
        neg = int(labelled.sum()) - pos
        if labelled.any():  # every labelled clip called present: tp = positives, fp = negatives
            f1.append(2 * pos / (2 * pos + neg))
    assert trivial_macro_f1(data) == pytest.approx(np.mean(f1))


def test_heat_map_is_drawn_beside_the_strong_labels(tmp_path):
    path = heat_map(tmp_path, _results(), [("alpha", 0.0, 2.0)])
    image = mpimg.imread(path)
    assert path.name == "tagged-clip.png" and image.shape[1] > 1000 and image[..., :3].std() > 0.05


def test_localisation_section_puts_the_policy_beside_both_baselines():
    from instrec.pipelines.demo_report import _localization_section

    def scores(f1, er):
        return {"f1": f1, "er": er, "per_class": [{"instrument": "alpha", "n_ref": 3, "f1": f1, "er": er}]}

    decisions = {"policy": scores(0.61, 0.62), "spread_clip_tuned": scores(0.52, 1.5),
                 "spread_clip_0.5": scores(0.5, 1.6),
                 "frames_0.5": scores(0.46, 2.0), "nothing": scores(0.0, 1.0),
                 "psds": {"frames_psds1": 0.02, "spread_clip_psds1": 0.25, "frames_psds2": 0.14, "spread_clip_psds2": 0.4}}
    text = _localization_section({"att": {"frame_level": scores(0.46, 2.0), "frame_agnostic": scores(0.5, 1.6),
                                          "decisions": decisions}})
    rows = [line for line in text.splitlines() if line.startswith("| att |")]
    assert rows[:5] == ["| att | per-second policy, tuned | 0.610 | 0.620 |",
                        "| att | clip answer spread (tuned thresholds) | 0.520 | 1.500 |",
                        "| att | clip answer spread (0.5) | 0.500 | 1.600 |", "| att | frames > 0.5 | 0.460 | 2.000 |",
                        "| att | no answer | 0.000 | 1.000 |"]
    assert "| att | 0.020 | 0.250 | 0.140 | 0.400 |" in rows
    assert "saying nothing scores an error rate of 1" in text

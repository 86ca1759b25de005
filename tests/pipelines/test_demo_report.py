"""The demo and experiment reports: the call-everything floor, Fig. 2's line for it, no table
written twice, no column that never changes."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
from conftest import TINY_CLASSES, make_tiny_dataset

from instrec.data.openmic import load_split
from instrec.evaluation import metrics, report
from instrec.pipelines.demo_report import clip_rows, heat_map, trivial_macro_f1
from instrec.tagging.results import FileTags, TagResults


def _results():
    frames = np.array([[0.9, 0.2, 0.1, np.nan], [0.8, 0.7, 0.1, np.nan]])
    tags = FileTags("clip.wav", np.array([0.9, 0.7, 0.1, np.nan]), np.array([True, True, False, False]), 2, 1,
                    "single window", frames, None, frame_present=frames > 0.5)
    return TagResults(TINY_CLASSES, [tags], [], np.array([0.5, 0.6, 0.5, 0.5]), np.array([True, True, True, False]),
                      "tuned", "tuned: per instrument")


def test_call_everything_macro_f1_by_hand():
    # Two instruments. a: labelled in 4 clips, 1 positive -> calling all present gives P 1/4, R 1,
    # F1 2/5 = 0.4. b: labelled in 2 clips, both positive -> F1 1. Unlabelled entries are not scored.
    y_true = np.array([[1, 1], [0, 1], [0, 0], [0, 0]], float)
    y_mask = np.array([[1, 1], [1, 1], [1, 0], [1, 0]], bool)
    assert metrics.call_everything_macro_f1(y_true, y_mask, ["a", "b"]) == pytest.approx((0.4 + 1.0) / 2)


def test_fig2_draws_the_reference_as_a_labelled_dashed_line(tmp_path, monkeypatch):
    figures = []
    save = report._save_png
    monkeypatch.setattr(report, "_save_png", lambda fig, path, dpi: figures.append(fig) or save(fig, path, dpi))
    summary = report.summarise([{"model": m, "loss": "focal", "augment": "none", "seed": 0, "macro_f1": f}
                                for m, f in (("att", 0.7), ("bilstm-att", 0.6))])
    report.plot_macro_f1(summary, tmp_path / "fig2.png", reference=("calling every instrument present", 0.562))
    ax = figures[0].axes[0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and np.allclose(dashed[0].get_ydata(), 0.562)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "calling every instrument present: 0.562" in labels and {"att", "bilstm-att"} <= set(labels)


def test_report_can_leave_the_table_to_summary_md(tmp_path):
    summary = report.summarise([{"model": "att", "loss": "focal", "augment": "none", "seed": 0, "macro_f1": 0.5}])
    with_table = report.write_report(tmp_path, summary).read_text()
    without = report.write_report(tmp_path, summary, extra_sections={"Scores": "see summary.md"},
                                  table=False).read_text()
    assert "| model | loss | augment |" in with_table and "| model |" not in without
    assert "## Scores\n\nsee summary.md" in without


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


def test_the_tagged_clip_boxes_frames_only_in_instruments_the_clip_is_tagged_with(tmp_path, monkeypatch):
    from instrec.pipelines import demo_report

    frames = np.array([[0.9, 0.8, 0.1], [0.9, 0.2, 0.7], [0.1, 0.9, 0.9]])  # (3 frames, 3 instruments)
    tags = FileTags("clip.wav", np.array([0.8, 0.3, 0.6]), np.array([True, False, True]), 3, 1, "att",
                    frame_probabilities=frames, frame_present=frames > 0.5)
    results = TagResults(["a", "b", "c"], [tags], [], np.full(3, 0.5), np.ones(3, bool))
    drawn = []
    monkeypatch.setattr(demo_report, "plot_file", lambda t, *args, **kwargs: drawn.append(t) or b"png")
    demo_report.heat_map(tmp_path, results, [("a", 0.0, 2.0)])
    # b is not tagged in the clip: none of its frames is boxed, though two pass the threshold.
    assert drawn[0].frame_present.tolist() == [[True, False, False], [True, False, True], [False, False, True]]
    assert tags.frame_present[:, 1].sum() == 2, "the results themselves are left as they were"
    assert (tmp_path / demo_report.HEATMAP_FILE).read_bytes() == b"png"

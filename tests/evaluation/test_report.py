"""Tests for instrec.evaluation.report: summary statistics, CSV/markdown tables, PNG figures, report.md."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from instrec.evaluation import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# att/focal over three seeds: macro F1 0.5, 0.6, 0.7 -> mean 0.6, sample std sqrt(0.02 / 2) = 0.1
#                             mean AP 0.2, 0.4, 0.9 -> mean 0.5, std sqrt((0.09 + 0.01 + 0.16) / 2) = sqrt(0.13)
# rf/focal, one seed: std 0.
ROWS = [
    {"model": "att", "loss": "focal", "augment": "none", "seed": 0, "macro_f1": 0.5, "mean_ap": 0.2,
     "per_class_f1": {"piano": 0.1}},
    {"model": "rf", "loss": "focal", "augment": "none", "seed": 0, "macro_f1": 0.4, "mean_ap": 0.3,
     "per_class_f1": {"piano": 0.2}},
    {"model": "att", "loss": "focal", "augment": "none", "seed": 1, "macro_f1": 0.6, "mean_ap": 0.4,
     "per_class_f1": {"piano": 0.3}},
    {"model": "att", "loss": "focal", "augment": "none", "seed": 2, "macro_f1": 0.7, "mean_ap": 0.9,
     "per_class_f1": {"piano": 0.4}},
]


def test_summarise_hand():
    summary = report.summarise(ROWS)
    assert [(s["model"], s["n"]) for s in summary] == [("att", 3), ("rf", 1)]
    att, rf = summary
    assert list(att) == ["model", "loss", "augment", "n", "macro_f1_mean", "macro_f1_std", "mean_ap_mean",
                         "mean_ap_std"]
    assert att["macro_f1_mean"] == pytest.approx(0.6) and att["macro_f1_std"] == pytest.approx(0.1)
    assert att["mean_ap_mean"] == pytest.approx(0.5) and att["mean_ap_std"] == pytest.approx(math.sqrt(0.13))
    assert rf["macro_f1_mean"] == pytest.approx(0.4) and rf["macro_f1_std"] == 0.0
    # Agrees with numpy's sample std.
    assert att["macro_f1_std"] == pytest.approx(np.std([0.5, 0.6, 0.7], ddof=1))


def test_summarise_groups_on_every_config_field_and_keeps_nan():
    rows = [{"model": "att", "augment": a, "seed": s, "f1": v, "flag": True}
            for a, s, v in [("none", 0, 0.1), ("both", 0, 0.3), ("none", 1, 0.2), ("both", 1, float("nan"))]]
    none, both = report.summarise(rows)
    assert (none["augment"], none["flag"], none["n"]) == ("none", True, 2)
    assert none["f1_mean"] == pytest.approx(0.15)
    assert math.isnan(both["f1_mean"])  # a failed run shows up instead of vanishing


@pytest.mark.parametrize("rows, message", [
    ([], "summarise needs at least one results row"),
    ([{"model": "a", "seed": 0, "f1": 0.1}, {"model": "a", "seed": 1}], r"results row 1 lacks metric\(s\) \['f1'\]"),
    ([{"model": "a", "f1": 0.1}, {"model": "b", "f1": "high"}], r"fields \['f1'\] mix numbers and non-numbers"),
])
def test_summarise_errors(rows, message):
    with pytest.raises(ValueError, match=message):
        report.summarise(rows)


def test_mean_std_by_instrument():
    out = report.mean_std_by_instrument({"att": {"piano": [0.2, 0.4], "voice": [0.5]}})
    assert out["att"]["piano"] == pytest.approx((0.3, math.sqrt(0.02)))
    assert out["att"]["voice"] == (0.5, 0.0)
    with pytest.raises(ValueError, match="mean_std needs at least one value"):
        report.mean_std([])


def test_results_csv_round_trip(tmp_path):
    rows = [dict(r) for r in ROWS]
    rows[1]["train_seconds"] = 12.25           # a column only one row has
    rows[2]["macro_f1"] = 0.1 + 0.2            # full float precision survives
    path = report.write_results_csv(tmp_path / "results.csv", rows)
    with open(path, newline="") as fh:
        parsed = list(csv.DictReader(fh))
    assert list(parsed[0]) == ["model", "loss", "augment", "seed", "macro_f1", "mean_ap", "per_class_f1",
                               "train_seconds"]
    assert [p["model"] for p in parsed] == ["att", "rf", "att", "att"]
    assert parsed[0]["train_seconds"] == "" and parsed[1]["train_seconds"] == "12.25"
    assert parsed[0]["per_class_f1"] == '{"piano": 0.1}'
    back = report.read_results_csv(path)
    assert back[2]["macro_f1"] == 0.1 + 0.2 and back[3]["seed"] == 2 and back[0]["train_seconds"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temp file left behind


def test_summary_markdown(tmp_path):
    summary = report.summarise(ROWS)
    text = report.format_summary_markdown(summary)
    lines = text.splitlines()
    assert lines[0] == "| model | loss | augment | n | macro_f1 | mean_ap |"
    assert lines[2] == "| att | focal | none | 3 | 0.600 ± 0.100 | 0.500 ± 0.361 |"
    assert lines[3] == "| rf | focal | none | 1 | 0.400 | 0.300 |"  # one seed: its value, no "± 0.000"
    only = report.format_summary_markdown(summary, metrics=["mean_ap"], digits=2).splitlines()
    assert only[2] == "| att | focal | none | 3 | 0.50 ± 0.36 |"
    path = report.write_summary_markdown(tmp_path / "summary.md", summary)
    assert path.read_text(encoding="utf-8") == text
    with pytest.raises(ValueError, match=r"metric\(s\) \['micro_f1'\] are not in the summary"):
        report.format_summary_markdown(summary, metrics=["micro_f1"])


def _check_png(path, min_w: int = 300, min_h: int = 200):
    import matplotlib.image as mpimg

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img.shape[1] >= min_w and img.shape[0] >= min_h
    assert img.shape[0] < 4000 and img.shape[1] < 5000
    assert img[..., :3].std() > 0.01  # not a blank canvas
    return img


def test_plot_macro_f1(tmp_path):
    summary = report.summarise(ROWS)
    path = report.plot_macro_f1(summary, tmp_path / "fig2.png")
    assert path == tmp_path / "fig2.png"
    _check_png(path)
    report.plot_macro_f1(summary, tmp_path / "fig2_ap.png", metric="mean_ap")
    _check_png(tmp_path / "fig2_ap.png")
    with pytest.raises(ValueError, match="metric 'micro_f1' is not in the summary"):
        report.plot_macro_f1(summary, tmp_path / "x.png", metric="micro_f1")
    assert not (tmp_path / "x.png").exists()


def test_plot_per_class_f1(tmp_path):
    per_class = {"att": {"piano": (0.5, 0.1), "voice": (0.7, 0.05), "drums": (0.2, 0.0)},
                 "bilstm-att": {"piano": (0.6, 0.02), "voice": (0.8, 0.1)}}   # no drums: left blank
    path = report.plot_per_class_f1(per_class, tmp_path / "fig3.png")
    img = _check_png(path)
    assert img.shape[1] > img.shape[0]  # a wide figure
    with pytest.raises(ValueError, match="per_class_by_model is empty"):
        report.plot_per_class_f1({}, tmp_path / "y.png")


def test_write_report(tmp_path):
    summary = report.summarise(ROWS)
    fig2 = report.plot_macro_f1(summary, tmp_path / "fig2.png")
    fig3 = report.plot_per_class_f1({"att": {"piano": (0.5, 0.1)}}, tmp_path / "figs" / "fig3.png")
    path = report.write_report(tmp_path, summary, {"Fig. 2: macro F1": fig2, "Fig. 3: per instrument": fig3},
                               {"Setup": "Grid `demo`, 3 seeds."}, title="Demo")
    assert path == tmp_path / "report.md"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Demo\n")
    assert "## Setup\n\nGrid `demo`, 3 seeds.\n" in text
    assert "| att | focal | none | 3 | 0.600 ± 0.100 | 0.500 ± 0.361 |" in text
    assert "![Fig. 2: macro F1](fig2.png)" in text
    assert "![Fig. 3: per instrument](figs/fig3.png)" in text
    assert text.index("## Setup") < text.index("## Results") < text.index("## Figures")
    # A plain list of figures is captioned by file stem.
    text = report.write_report(tmp_path, summary, [fig2]).read_text(encoding="utf-8")
    assert "![fig2](fig2.png)" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig2.png", "figs", "report.md"]


def test_best_per_group_picks_the_top_mean_of_each_model():
    summary = [
        {"model": "att", "loss": "bce", "macro_f1_mean": 0.70},
        {"model": "bilstm-att", "loss": "bce", "macro_f1_mean": float("nan")},
        {"model": "att", "loss": "focal", "macro_f1_mean": 0.75},
        {"model": "bilstm-att", "loss": "focal", "macro_f1_mean": 0.60},
        {"model": "att", "loss": "x", "macro_f1_mean": 0.75},   # a tie keeps the first
        {"model": "rf", "loss": "focal", "macro_f1_mean": float("nan")},  # nothing better: kept
    ]
    assert report.best_per_group(summary) == [2, 3, 5]
    assert report.best_per_group(summary, group_key="loss") == [0, 2, 4]


def test_one_seed_reports_plain_values_and_says_so(tmp_path):
    rows = [{"model": "att", "loss": "focal", "seed": 0, "macro_f1": 0.25},
            {"model": "bilstm-att", "loss": "focal", "seed": 0, "macro_f1": 0.5}]
    summary = report.summarise(rows)
    assert report.seeds_phrase(summary) == "one seed"
    assert report.seeds_phrase(report.summarise(ROWS)) == "mean ± std over seeds"
    assert report.seeds_phrase(report.summarise([*rows, {**rows[0], "seed": 1}, {**rows[1], "seed": 1}])) == \
        "mean ± std over 2 seeds"
    _check_png(report.plot_macro_f1(summary, tmp_path / "fig2.png"))
    text = report.write_report(tmp_path, summary, title="One seed").read_text(encoding="utf-8")
    assert "## Results (one seed)" in text and "±" not in text
    assert "| att | focal | 1 | 0.250 |" in text and "| bilstm-att | focal | 1 | 0.500 |" in text


def test_per_class_figure_marks_instruments_without_f1(tmp_path):
    per_class = {"att": {"piano": (0.5, 0.0), "mandolin": (float("nan"), 0.0)},
                 "bilstm-att": {"piano": (0.6, 0.0), "mandolin": (float("nan"), 0.0)}}
    _check_png(report.plot_per_class_f1(per_class, tmp_path / "fig3.png", n_seeds=1))

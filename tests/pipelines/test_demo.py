"""The quick-start pipeline end to end on a very small corpus (the README's main job)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from instrec.pipelines.demo import run_demo
from instrec.pipelines.grids import DEMO_RULE
from instrec.tagging.formats import parse_csv

REAL = Path(__file__).resolve().parents[2] / "examples" / "real"


@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path, capfd, monkeypatch, musicnn_weights_dir):
    monkeypatch.setenv("INSTREC_WEIGHTS_DIR", str(musicnn_weights_dir))  # the musicnn weights of this test session
    out = tmp_path / "demo"
    summary = run_demo(out, clips=48, epochs=2, jobs=1, real=REAL, progress=False)
    printed = capfd.readouterr()  # file descriptors: the training worker processes' output too
    assert printed.err == "", "progress=False prints nothing but the final summary"
    saved = json.loads((out / "demo-summary.json").read_text())
    assert saved["tagged_clip"] == summary["tagged_clip"] and "_s0" in saved["tagged_with"]
    assert {(r["model"], r["augment"]) for r in saved["runs"]} == {
        ("att", "none"), ("att", f"both-{DEMO_RULE}"), ("bilstm-att", "none"), ("bilstm-att", f"both-{DEMO_RULE}")}
    assert all(0.0 <= r["macro_f1"] <= 1.0 for r in saved["runs"])
    for model in ("bilstm-att", "att"):
        loc = saved["localization_segment_f1"][model]
        assert 0.0 <= loc["frame_level"] <= 1.0 and 0.0 <= loc["frame_agnostic"] <= 1.0
        assert 0.0 <= loc["policy"] <= 1.0  # the per-second policy, tuned on the run's validation clips
        assert "frame_policy" in json.loads((Path(saved["tagged_with"]).parent / f"{model}_focal_none_s0" /
                                             "config.json").read_text())
    comments, rows = parse_csv((out / "tags.csv").read_text())
    assert len(rows) == 1 and rows[0]["file"] == saved["tagged_clip"] and rows[0]["n_frames"] == "10"
    assert comments[0].startswith("threshold: ") and saved["threshold"] in comments[0]
    # Instruments the corpus never renders: no run learned them, no number is given for them.
    stats = json.loads((out / "corpus" / "corpus-stats.json").read_text())
    never_rendered = set(stats["classes"]) - set(stats["renderable_classes"])
    assert never_rendered and never_rendered <= set(saved["not_learned"])
    assert all(rows[0][c] == "" and rows[0][f"{c}_present"] == "" for c in saved["not_learned"])
    _, per_second = parse_csv((out / "tags-per-second.csv").read_text())
    assert len(per_second) == 10 * 20 and {r["present"] for r in per_second} <= {"0", "1", ""}
    assert saved["truth"], "the tagged clip has at least one sounding instrument"
    report = (out / "report.md").read_text()
    assert saved["report"] == str(out / "report.md")
    assert "experiment/fig2_macro_f1.png" in report and "experiment/fig3_per_instrument_f1.png" in report
    assert "±" not in report and "±" not in (out / "experiment" / "report.md").read_text()
    for heading in ("## What was trained", "## How it scored", "## When each instrument plays",
                    "## When each instrument plays: the per-second policy against both baselines",
                    "## One test clip: what it contains and what was heard", "## Real recordings"):
        assert heading in report
    assert "(tagged-clip.png)" in report and mpimg.imread(out / "tagged-clip.png").ndim == 3
    for truth in saved["truth"]:
        assert f"| {truth} |" in report  # every sounding instrument has a row with its verdict
    assert mpimg.imread(out / "experiment" / "fig2_macro_f1.png").ndim == 3
    # One table per file: summary.md has every metric (and no column that is always "none"), the
    # experiment's report links it, the demo's report has its own, explained, view.
    summary_md = (out / "experiment" / "summary.md").read_text()
    assert summary_md.startswith("| model | loss | augment | n | macro_f1 |")
    experiment_report = (out / "experiment" / "report.md").read_text()
    assert "| model |" not in experiment_report and "[summary.md](summary.md)" in experiment_report
    assert "| model | loss |" not in report and "| above calling everything |" in report
    assert "mixup + concatenation, mixup's label rule `known`" in report and "(experiment/summary.md)" in report
    run = Path(saved["tagged_with"]).parent / "bilstm-att_focal_none_s0"
    clip_table = (run / "per_class.csv").read_text()
    segment_table = (run / "localization" / "per_class.csv").read_text()
    assert segment_table != clip_table and segment_table.startswith("method,instrument,f1,")
    printed = printed.out
    assert "Test-set scores" in printed and "bilstm-att" in printed
    # The real recordings, tagged with the default model that ships in the package.
    real = saved["real_recordings"]
    assert [Path(r["file"]).name for r in real] == sorted(p.name for p in REAL.glob("*.flac"))
    assert all(len(r["top"]) == 3 and 0 <= r["top"][0][1] <= 1 for r in real)
    assert len(parse_csv((out / "real-tags.csv").read_text())[1]) == 2
    assert "Real recordings, tagged with the default model:" in printed

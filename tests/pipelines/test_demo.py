"""The quick-start pipeline end to end on a very small corpus (the README's main job)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.image as mpimg
import pytest

from instrec.pipelines.demo import run_demo
from instrec.pipelines.grids import DEMO_RULE

REAL = Path(__file__).resolve().parents[2] / "examples" / "real"


@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path, capsys, monkeypatch, musicnn_weights_dir):
    monkeypatch.setenv("INSTREC_WEIGHTS_DIR", str(musicnn_weights_dir))  # the musicnn weights of this test session
    out = tmp_path / "demo"
    summary = run_demo(out, clips=48, epochs=2, jobs=1, real=REAL)
    saved = json.loads((out / "demo-summary.json").read_text())
    assert saved["tagged_clip"] == summary["tagged_clip"] and "_s0" in saved["tagged_with"]
    assert {(r["model"], r["augment"]) for r in saved["runs"]} == {
        ("att", "none"), ("att", f"both-{DEMO_RULE}"), ("bilstm-att", "none"), ("bilstm-att", f"both-{DEMO_RULE}")}
    assert all(0.0 <= r["macro_f1"] <= 1.0 for r in saved["runs"])
    for model in ("bilstm-att", "att"):
        loc = saved["localization_segment_f1"][model]
        assert 0.0 <= loc["frame_level"] <= 1.0 and 0.0 <= loc["frame_agnostic"] <= 1.0
    rows = list(csv.DictReader(open(out / "tags.csv")))
    assert len(rows) == 1 and rows[0]["file"] == saved["tagged_clip"] and rows[0]["n_frames"] == "10"
    per_second = list(csv.DictReader(open(out / "tags-per-second.csv")))
    assert len(per_second) == 10 * 20
    assert saved["truth"], "the tagged clip has at least one sounding instrument"
    report = (out / "experiment" / "report.md").read_text()
    assert "fig2_macro_f1.png" in report and "fig3_per_instrument_f1.png" in report
    assert mpimg.imread(out / "experiment" / "fig2_macro_f1.png").ndim == 3
    printed = capsys.readouterr().out
    assert "Test-set scores" in printed and "bilstm-att" in printed
    # The real recordings, tagged with the default model that ships in the package.
    real = saved["real_recordings"]
    assert [Path(r["file"]).name for r in real] == sorted(p.name for p in REAL.glob("*.flac"))
    assert all(len(r["top"]) == 3 and 0 <= r["top"][0][1] <= 1 for r in real)
    assert len(list(csv.DictReader(open(out / "real-tags.csv")))) == 2
    assert "Real recordings, tagged with the default model:" in printed

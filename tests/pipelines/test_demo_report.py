"""The demo and experiment reports: the call-everything floor, Fig. 2's line for it, no table
written twice, no column that never changes."""
from __future__ import annotations

import numpy as np
import pytest

from instrec.evaluation import metrics, report


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

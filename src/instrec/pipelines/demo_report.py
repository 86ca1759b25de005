"""The demo's ``report.md``: the story of one demo run, written from what it measured.

What was trained (the corpus and the runs), how the runs scored on the test clips (and
what that number means beside a trivial tagger), when each instrument plays (segment
scores, overall and per instrument), what the tagged test clip contains against what the
model heard (with a per-second heat map beside the clip's strong labels), and what the
default model heard in the real recordings. Every number comes from the demo's own
outputs; nothing here is typed by hand.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from instrec._io import atomic_write_bytes, atomic_write_text
from instrec.data.openmic import load_split
from instrec.evaluation.metrics import call_everything_macro_f1
from instrec.tagging.plot import plot_file
from instrec.tagging.results import TagResults

REPORT_FILE = "report.md"
HEATMAP_FILE = "tagged-clip.png"


def trivial_macro_f1(corpus: Path) -> float:
    """Test macro F1 of a tagger that calls every instrument present in every clip: the floor
    a model must beat (on partial labels it is far from 0)."""
    test = load_split(corpus, "test")
    return call_everything_macro_f1(test.Y_true, test.Y_mask, test.classes)


#: What the demo grid's augmentation names mean (instrec.pipelines.grids), for the report's readers.
AUGMENT_WORDS = {"none": "none",
                 "both-known": "mixup + concatenation, mixup's label rule `known`"}


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; numeric columns (judged by the first row) are right-aligned."""
    numeric = [isinstance(v, (int, float)) for v in rows[0]] if rows else [False] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("--:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if not np.isfinite(value) else f"{value:.3f}"
    return str(value)


def _link(path: Path, out: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), out.resolve())).as_posix()


def heat_map(out: Path, results: TagResults, events: Sequence[tuple[str, float, float]]) -> Path:
    """``out/tagged-clip.png``: the tagged clip's per-second probabilities beside its strong labels."""
    tags = results.files[0]
    if tags.frame_present is not None:
        # Frames are boxed only in the instruments the clip is tagged with: a frame output above the
        # clip's threshold in an instrument the clip-level answer rejects is not a claim the model makes
        # (an instrument's frame probabilities run above its clip probability where attention is low).
        tags = replace(tags, frame_present=tags.frame_present & tags.present[None, :])
    trained = results.trained if results.trained is not None else np.ones(len(results.classes), bool)
    png = plot_file(tags, results.classes, results.thresholds, trained, results.threshold_description, events,
                    frame_policy=results.frame_policy)
    return atomic_write_bytes(out / HEATMAP_FILE, png)


def clip_rows(results: TagResults, events: Sequence[tuple[str, float, float]]) -> list[list[Any]]:
    """Per instrument that sounds in the clip or was tagged present: when it sounds, its
    probability and threshold, and whether the model got it (heard, missed, false alarm)."""
    tags = results.files[0]
    spans: dict[str, list[str]] = {}
    for inst, onset, offset in sorted(events, key=lambda e: e[1]):
        spans.setdefault(inst, []).append(f"{onset:.1f}-{offset:.1f}")
    rows = []
    for c, name in enumerate(results.classes):
        sounds, tagged = name in spans, bool(tags.present[c])
        if not (sounds or tagged):
            continue
        verdict = "heard" if sounds and tagged else ("missed" if sounds else "false alarm")
        if np.isnan(tags.probabilities[c]):
            verdict = "not learned"
        rows.append([name, ", ".join(spans.get(name, [])) or "-", float(tags.probabilities[c]),
                     float(results.thresholds[c]), verdict])
    return rows


def write_demo_report(out: Path, summary: dict[str, Any], stats: dict[str, Any], epochs: int,
                      results: TagResults, events: Sequence[tuple[str, float, float]],
                      localization: dict[str, dict[str, Any]], figures: dict[str, Path]) -> Path:
    """Write ``out/report.md`` (module docstring). ``localization``: model -> the scores of
    :func:`instrec.evaluation.evaluate.localize_run`; ``figures``: caption -> PNG path."""
    corpus = Path(summary["corpus"])
    missing = [c for c in stats.get("classes", []) if c not in stats.get("renderable_classes", [])]
    parts = ["# instrec demo report\n"]
    parts.append("## What was trained\n\n" + (
        f"A synthetic corpus of {stats.get('n_clips')} ten-second clips rendered from MIDI "
        f"({stats.get('n_train')} for training, {stats.get('n_test')} for testing), labelled like OpenMIC-2018: "
        f"about {stats.get('labelled_per_clip', float('nan')):.1f} instruments per clip are labelled present or "
        "absent, the others are unknown. "
        + (f"The corpus never renders {' and '.join(missing)}, so no run learned them: they get no probability "
           "and no F1. " if missing else "")
        + f"Four runs of {epochs} epochs each, one seed: the paper's BiLSTM-ATT and its ATT baseline, with focal "
          "loss, without and with mixup + concatenation.\n"))

    floor = trivial_macro_f1(corpus)
    rows = [[r["model"], AUGMENT_WORDS.get(r["augment"], r["augment"]), r["macro_f1"], r["macro_f1"] - floor,
             r["mean_ap"]] for r in summary["runs"]]
    parts.append("## How it scored (test clips, threshold 0.5, one seed)\n\n"
                 + _table(["model", "trained with", "macro F1", "above calling everything", "mAP"], rows)
                 + "\n- **macro F1** averages, over instruments, how well the present/absent calls match the "
                   "labelled (clip, instrument) pairs (1 is perfect; unlabelled pairs are not scored).\n"
                   f"- **above calling everything**: a tagger that calls every instrument present scores {floor:.3f} "
                   "here, because many labelled pairs are positives; only the margin above it is learned (the "
                   "dashed line in Fig. 2).\n"
                   "- **mAP** (mean average precision) ranks the clips by probability per instrument, with no "
                   "threshold: 1 when every labelled positive comes before every labelled negative.\n"
                   "- **trained with**: every run uses focal loss; `known` keeps a mixed entry labelled wherever "
                   "its answer is still certain (the paper's rule keeps only entries labelled in both clips).\n\n"
                   f"Every metric of every run: [{_link(Path(summary['experiment_report']).parent / 'summary.md', out)}]"
                   f"({_link(Path(summary['experiment_report']).parent / 'summary.md', out)}).\n")
    for caption, png in figures.items():
        parts.append(f"![{caption}]({_link(png, out)})\n\n*{caption}*\n")

    parts.append(_localization_section(localization))

    tags = results.files[0]
    parts.append("## One test clip: what it contains and what was heard\n\n" + (
        f"`{Path(tags.path).name}` (rendered again from the corpus's MIDI), tagged with the run of best validation "
        f"macro F1, `{Path(summary['tagged_with']).name}`. Threshold: {results.threshold_description}.\n\n")
        + _table(["instrument", "sounds (s)", "probability", "threshold", "verdict"], clip_rows(results, events))
        + f"\n![Per-second probabilities beside the strong labels]({HEATMAP_FILE})\n\n"
          "*Left: the model's probability per 0.96-s frame (white boxes: frames above the threshold, in the "
          "instruments the clip is tagged with). Middle: "
          "when each instrument really sounds. Right: the clip-level probability with its threshold.*\n")

    real = summary.get("real_recordings")
    if isinstance(real, list):
        parts.append("## Real recordings, tagged with the default model\n\n" + _table(
            ["file", "heard", "most probable"],
            [[Path(r["file"]).name, ", ".join(r["heard"]) or "(nothing)",
              ", ".join(f"{c} {p:.2f}" for c, p in r["top"])] for r in real]))
    elif real:
        parts.append(f"## Real recordings\n\n{real}\n")
    parts.append(f"All runs, tables and figures of the experiment: [{_link(Path(summary['experiment_report']), out)}]"
                 f"({_link(Path(summary['experiment_report']), out)}).\n")
    return atomic_write_text(out / REPORT_FILE, "\n".join(parts))


#: Rows of the localisation table: the tuned per-second policy and its baselines.
_DECISIONS = (("policy", "per-second policy, tuned"), ("spread_clip_tuned", "clip answer spread (tuned thresholds)"),
              ("spread_clip_0.5", "clip answer spread (0.5)"), ("frames_0.5", "frames > 0.5"),
              ("nothing", "no answer"))


def _decisions_section(localization: dict[str, dict[str, Any]]) -> str:
    """The tuned per-second policy of each model against both baselines (test clips), with PSDS."""
    rows = [[model, label, s["decisions"][key]["f1"], s["decisions"][key]["er"]]
            for model, s in localization.items() for key, label in _DECISIONS]
    psds = [[m, *(s["decisions"]["psds"][k] for k in ("frames_psds1", "spread_clip_psds1", "frames_psds2",
                                                      "spread_clip_psds2"))]
            for m, s in localization.items() if "psds" in s["decisions"]]
    text = ("## When each instrument plays: the per-second policy against both baselines (test clips, 1-s segments)\n\n"
            + _table(["model", "decision", "segment F1", "error rate"], rows)
            + "\nThe per-second policy (per-instrument frame thresholds and smoothing tuned on the validation clips, "
              "gated by the clip answer) earns its place only where its F1 is above and its error rate below both "
              "baselines: saying nothing scores an error rate of 1, and the clip answer spread over the clip is all "
              "a clip tagger can say about when.\n")
    if psds:
        text += ("\nThreshold-free: PSDS (sed_scores_eval; scenario 1 strict on timing, scenario 2 lenient) of the "
                 "frame probabilities and of the clip probabilities spread over the clip.\n\n"
                 + _table(["model", "PSDS1 frames", "PSDS1 spread clip", "PSDS2 frames", "PSDS2 spread clip"], psds))
    return text + "\n"


def _localization_section(localization: dict[str, dict[str, Any]]) -> str:
    """The per-second policy against the baselines (where tuned), overall segment scores per
    model at 0.5, then per instrument for the first model."""
    decisions = _decisions_section(localization) if all("decisions" in s for s in localization.values()) else ""
    overall = []
    for model, scores in localization.items():
        level, agnostic = scores.get("frame_level") or {}, scores["frame_agnostic"]
        overall.append([model, level.get("f1", float("nan")), level.get("er", float("nan")), agnostic["f1"],
                        agnostic["er"]])
    text = decisions + ("## When each instrument plays (1-s segments, frame threshold 0.5)\n\n"
            + _table(["model", "per-second F1", "per-second ER", "clip-level F1", "clip-level ER"], overall)
            + "\nPer-second: the model's frame outputs; clip-level: its clip answer claimed for the whole clip. "
              "Segment F1 pools the (1-s segment, instrument) pairs; the error rate ER counts substitutions, "
              "deletions and insertions per sounding pair (0 is perfect, 1 is no better than saying nothing).\n")
    model, scores = next(iter(localization.items()))
    level = {r["instrument"]: r for r in (scores.get("frame_level") or {}).get("per_class", [])}
    rows = [[r["instrument"], r["n_ref"], level.get(r["instrument"], {}).get("f1", float("nan")),
             level.get(r["instrument"], {}).get("er", float("nan")), r["f1"], r["er"]]
            for r in scores["frame_agnostic"]["per_class"]]
    return text + (f"\nPer instrument, {model} (`localization/per_class.csv` in its run folder):\n\n"
                   + _table(["instrument", "sounding segments", "per-second F1", "per-second ER", "clip-level F1",
                             "clip-level ER"], rows))

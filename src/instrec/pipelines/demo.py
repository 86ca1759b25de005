"""The quick start, end to end and offline: render the default corpus, train the paper's
model (BiLSTM-ATT) and its ATT baseline, evaluate (clip-level and per-second
localisation), draw the paper's figures, tag one rendered test clip from its audio, and
write ``report.md`` (:mod:`instrec.pipelines.demo_report`) with what all of it means.

Every step reuses what an earlier, interrupted call finished (the corpus, finished runs).
With ``progress=False`` only the final summary is printed.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from instrec._io import InstrecError, atomic_write_json, atomic_write_text
from instrec.data.layout import NPZ_FILE, midi_path, partition_path, read_corpus_stats, read_strong_labels
from instrec.data.openmic import read_partition
from instrec.evaluation.evaluate import localize_run
from instrec.features.audio import expand_inputs
from instrec.pipelines.demo_report import REPORT_FILE, heat_map, write_demo_report
from instrec.pipelines.experiment import FIG2_FILE, FIG3_FILE, RunSpec, run_experiment, run_path
from instrec.pipelines.grids import DEMO_EPOCHS
from instrec.run import read_config
from instrec.runinfo import set_threads
from instrec.synth import build_corpus
from instrec.synth.render import render_midi_file
from instrec.tagging.calibrate import score_run_policy
from instrec.tagging.formats import format_results
from instrec.tagging.predict import predict

#: The two real recordings the repository carries (CC BY, credited in their README).
REAL_EXAMPLES = Path("examples") / "real"
REAL_TAGS_FILE = "real-tags.csv"
TAGS_FILE = "tags.csv"
TAGS_PER_SECOND_FILE = "tags-per-second.csv"
SUMMARY_FILE = "demo-summary.json"


def run_demo(out: str | Path = "demo-output", clips: int = 2000, epochs: int = DEMO_EPOCHS, jobs: int = 2,
             overwrite: bool = False, seed: int = 0, real: str | Path | None = REAL_EXAMPLES,
             progress: bool = True) -> dict[str, Any]:
    """The quick start (module docstring) into ``out``; ``real``: a folder of real recordings
    to tag with the default model at the end (None: skip that step). ``progress``: print the
    steps and progress bars on stderr (False: only the final summary, on stdout)."""
    out = Path(out)
    corpus = out / "corpus"
    # This process scores and tags; like every instrec process it does so with one torch thread
    # (instrec.runinfo: a second thread costs much on a busy machine). Renderers and runs are workers.
    set_threads(0)

    started = time.monotonic()

    def say(message: str) -> None:  # each step with the minutes:seconds since the start
        if progress:
            m, s = divmod(int(time.monotonic() - started), 60)
            print(f"[instrec demo {m}:{s:02d}] {message}", file=sys.stderr, flush=True)

    stats = read_corpus_stats(corpus) if (corpus / NPZ_FILE).is_file() else None
    recorded = (stats or {}).get("n_clips"), (stats or {}).get("seed"), (stats or {}).get("recipe", "ensemble")
    if overwrite or recorded != (clips, seed, "ensemble"):
        if stats is not None and not overwrite:  # a corpus of other settings is never passed off as this one
            say(f"the corpus in {corpus} has {recorded[0]} clips of seed {recorded[1]} ({recorded[2]}): "
                "rendering again")
        say(f"1/5 rendering {clips} clips into {corpus}")
        build_corpus(corpus, clips, seed, jobs=jobs, overwrite=True, progress=progress)
    else:
        say(f"1/5 reusing the corpus in {corpus} ({clips} clips, seed {seed})")

    say(f"2/5 training BiLSTM-ATT and ATT ({epochs} epochs, focal loss, with and without mixup+concat)")
    experiment = out / "experiment"
    rows = run_experiment(corpus, experiment, grid="demo", seeds=1, epochs=epochs, jobs=jobs, overwrite=True,
                          progress=progress)

    say("3/5 scoring per-second activations against the strong labels")
    scores = {spec.model: localize_run(run_path(experiment, spec)) for spec in (RunSpec("bilstm-att"), RunSpec("att"))}
    for spec in (RunSpec("bilstm-att"), RunSpec("att")):  # the per-second policy, tuned on validation clips
        scores[spec.model]["decisions"] = score_run_policy(run_path(experiment, spec), corpus)
    localization = {model: {**{k: s[k]["f1"] if s[k] else None for k in ("frame_level", "frame_agnostic")},
                            "policy": s["decisions"]["policy"]["f1"]} for model, s in scores.items()}

    run_dirs = [run_path(experiment, RunSpec(r["model"], r["loss"], r["augment"], r["seed"])) for r in rows]
    run_dir = max(run_dirs, key=_best_val_f1)
    say(f"4/5 tagging a rendered test clip with the run of best validation macro F1 ({run_dir.name})")
    clip = _render_test_clip(corpus, out)
    results = predict(run_dir, [clip], per_second=True)
    atomic_write_text(out / TAGS_FILE, format_results(results, "csv"))
    atomic_write_text(out / TAGS_PER_SECOND_FILE, format_results(results, "csv", per_second=True))
    events = read_strong_labels(corpus, results.classes).get(clip.stem, [])
    heat_map(out, results, events)

    summary = {"corpus": str(corpus), "report": str(out / REPORT_FILE),
               "experiment_report": str(experiment / REPORT_FILE),
               "runs": [{k: r[k] for k in ("model", "loss", "augment", "macro_f1", "micro_f1", "mean_ap")}
                        for r in rows],
               "localization_segment_f1": localization, "tagged_clip": str(clip), "tagged_with": str(run_dir),
               "tagged_present": [c for c, p in zip(results.classes, results.files[0].present) if p],
               "threshold": results.threshold_description, "not_learned": results.untrained,
               "truth": sorted({e[0] for e in events})}
    if real is not None:
        say(f"5/5 tagging the real recordings in {real} with the default model")
    summary["real_recordings"] = _tag_real(Path(real), out, say) if real is not None else None
    write_demo_report(out, summary, read_corpus_stats(corpus) or {}, epochs, results, events, scores,
                      {"Fig. 2: macro F1 per configuration": experiment / FIG2_FILE,
                       "Fig. 3: F1 per instrument": experiment / FIG3_FILE})
    atomic_write_json(out / SUMMARY_FILE, summary)
    say(f"done: {out / REPORT_FILE}")
    _print_summary(summary)
    return summary


def _tag_real(folder: Path, out: Path, say) -> list[dict[str, Any]] | str:
    """Tag the real recordings in ``folder`` with the default model; what it heard, per file."""
    files = expand_inputs([folder]) if folder.is_dir() else []
    if not files:
        return f"no recordings in {folder}"
    try:
        results = predict(None, files)
    except InstrecError as exc:  # e.g. the package index cannot be reached for the musicnn weights
        say(f"skipped: {exc}")
        return f"skipped: {exc}"
    atomic_write_text(out / REAL_TAGS_FILE, format_results(results, "csv"))
    return [{"file": f.path, "heard": [c for c, p in zip(results.classes, f.present) if p],
             "top": sorted(zip(results.classes, map(float, f.probabilities)), key=lambda t: -t[1])[:3]}
            for f in results.files]


def _best_val_f1(run_dir: Path) -> float:
    return float(read_config(run_dir)["best_val_macro_f1"])


def _render_test_clip(corpus: Path, out: Path) -> Path:
    """Render the first test clip's MIDI file to ``out/KEY.wav`` with the corpus's SoundFont."""
    key = read_partition(partition_path(corpus, "test"))[0]
    stats = read_corpus_stats(corpus) or {}
    target = out / f"{key}.wav"
    render_midi_file(midi_path(corpus, key), target, soundfont=stats.get("soundfont"))
    return target


def _print_summary(s: dict[str, Any]) -> None:
    print("\nTest-set scores (threshold 0.5, labelled entries only):")
    print(f"  {'model':<11} {'loss':<6} {'augment':<10} {'macro F1':>8} {'micro F1':>8} {'mAP':>6}")
    for r in s["runs"]:
        print(f"  {r['model']:<11} {r['loss']:<6} {r['augment']:<10} {r['macro_f1']:8.3f} {r['micro_f1']:8.3f} "
              f"{r['mean_ap']:6.3f}")
    print("Per-second localisation, segment F1 (tuned per-second policy; frames > 0.5; clip answer spread):")
    for model, v in s["localization_segment_f1"].items():
        print(f"  {model:<11} {v['policy']:.3f}; {v['frame_level']:.3f}; {v['frame_agnostic']:.3f}")
    print(f"Tagged {s['tagged_clip']} with {Path(s['tagged_with']).name}: "
          f"{', '.join(s['tagged_present']) or '(nothing)'}")
    print(f"  instruments sounding in it: {', '.join(s['truth'])}")
    print(f"  threshold: {s['threshold']}")
    real = s.get("real_recordings")
    if isinstance(real, list):
        print("Real recordings, tagged with the default model:")
        for r in real:
            top = ", ".join(f"{c} {p:.2f}" for c, p in r["top"])
            print(f"  {Path(r['file']).name}: heard {', '.join(r['heard']) or '(nothing)'} (most probable: {top})")
    elif real:
        print(f"Real recordings: {real}")
    print(f"Report (what was trained, scores, localisation, the tagged clip): {s['report']}")

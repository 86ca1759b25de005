"""Real recordings: how well taggers hear instruments in audio nobody rendered.

Scores every system on the labelled recordings of ``--data`` (default
``../shared/realaudio-dev``: 24 CC BY files, solos and one 40-s sequence of solos; the
README there credits the sources) with :mod:`instrec.evaluation.recordings`: top-1, mean
average precision over the instruments that sound there, false positives per file and
recall at each system's threshold.

Systems:

* ``musicnn-tags``: the reference of the real-music issue. The pretrained MTT_musicnn
  tagger (``instrec download musicnn``) used as is: its 50 MagnaTagATune tags averaged
  over the 3-s patches of a file, mapped onto the OpenMIC classes they name
  (``instrec.features.musicnn_frontend.OPENMIC_TAGS``; the other classes get 0), present at 0.5. Files shorter than 3 s are zero-padded.
* ``default``: the default model that ships with instrec (``instrec predict`` without a run).
* ``run:DIR``: a trained instrec run, through ``instrec.tagging`` (its tuned thresholds).
"""
from __future__ import annotations

import sys
from pathlib import Path

import _common as C  # noqa: E402  (sets up sys.path for a clean clone)
import numpy as np

from instrec.classes import OPENMIC_CLASSES
from instrec.evaluation.recordings import read_recording_labels, score_recordings
from instrec.features.musicnn_frontend import OPENMIC_TAGS

NAME = "bench_realaudio"
DEFAULT_DATA = C.REPO.parent / "shared" / "realaudio-dev"
def musicnn_tags_system(files: list[Path]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(N, 20) probabilities and present flags of the musicnn tagger mapped onto OpenMIC."""
    from instrec.features.audio import load_audio
    from instrec.features.musicnn import MTT_TAGS, SAMPLE_RATE, extract
    from instrec.features.musicnn_weights import load_musicnn

    model = load_musicnn()
    cols = {c: [MTT_TAGS.index(t) for t in tags] for c, tags in OPENMIC_TAGS.items()}
    probs = np.zeros((len(files), len(OPENMIC_CLASSES)), np.float32)
    notes = []
    padded = 0
    for i, path in enumerate(files):
        audio = load_audio(path, SAMPLE_RATE)
        if len(audio) < 3 * SAMPLE_RATE:
            padded += 1
            audio = np.pad(audio, (0, 3 * SAMPLE_RATE - len(audio)))
        tags = extract(audio, model, frames=False)["taggram"].mean(axis=0)
        for c, idx in cols.items():
            probs[i, OPENMIC_CLASSES.index(c)] = tags[idx].max()
    if padded:
        notes.append(f"musicnn-tags: {padded} files shorter than 3 s (musicnn's input) were zero-padded to 3 s.")
    return probs, probs > 0.5, notes


def run_system(run_dir: str | None, files: list[Path]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from instrec.tagging.predict import predict

    results = predict(run_dir, files)
    if results.failures:
        raise SystemExit(f"{run_dir}: failed on {results.failures[0]}")
    return results.probabilities, np.stack([f.present for f in results.files]), []


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0], default_repeats=1)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder with labels.csv and the recordings")
    p.add_argument("--system", action="append", default=None,
                   help="musicnn-tags, default or run:DIR (repeatable; default: musicnn-tags and default)")
    args = p.parse_args()
    machine = C.machine_info()
    files, truth = read_recording_labels(Path(args.data) / "labels.csv", OPENMIC_CLASSES)
    if args.quick:
        files, truth = files[:4], truth[:4]
    rows, per_class, notes = [], [], []
    targets = []
    for system in args.system or ["musicnn-tags", "default"]:
        if system == "musicnn-tags":
            probs, present, sys_notes = musicnn_tags_system(files)
        elif system == "default":
            probs, present, sys_notes = run_system(None, files)
        elif system.startswith("run:"):
            probs, present, sys_notes = run_system(system[4:], files)
        else:
            raise SystemExit(f"unknown system {system!r}")
        s = score_recordings(truth, probs, present, OPENMIC_CLASSES)
        rows.append({"system": system, "files": s["n_files"], "top1": s["top1"], "mean_ap": s["mean_ap"],
                     "false_positives_per_file": s["false_positives_per_file"], "recall": s["recall"]})
        per_class += [{"system": system, **r} for r in s["per_class"]]
        if system == "default":
            targets += [C.target("default model top-1", s["top1"], ">=", 0.6),
                        C.target("default model mean AP", s["mean_ap"], ">=", 0.7),
                        C.target("default model false positives per file", s["false_positives_per_file"], "<=", 1.0)]
        notes += sys_notes
    columns = ["system", "files", "top1", "mean_ap", "false_positives_per_file", "recall"]
    C.print_table(f"Real recordings ({Path(args.data).name}, {len(files)} files)", rows, columns)
    notes = [f"Data: {Path(args.data).name} ({len(files)} labelled recordings, CC BY; see its README for credits).",
             "The default model's corpus recipe, front end, model, loss and tag rule were chosen on these same "
             "recordings (a handful of variants compared); no unseen real recordings were available to confirm "
             "the choice, so read its scores as development scores.",
             "top1: the most probable class sounds in the file; mean_ap: mean over the instruments that sound in "
             "some file of their average precision across files; false positives: instruments tagged present "
             "that do not sound."] + notes
    if args.quick:
        notes.append("QUICK MODE: 4 files only.")
    path = C.write_results(args.out, NAME, "Real recordings", args.quick, {"data": str(args.data)},
                           [C.table("systems", "Scores per system", rows, columns),
                            C.table("per_class", "Per instrument", per_class,
                                    ["system", "instrument", "support", "ap", "precision", "recall", "f1"])],
                           machine, targets, notes)
    C.print_targets(targets)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

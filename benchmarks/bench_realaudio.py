"""Real recordings: how well taggers hear instruments in audio nobody rendered.

Scores every system on the labelled recordings of ``--data`` (default
``../shared/realaudio-dev``: 59 files with partial labels; the README there credits the
sources) with :mod:`instrec.evaluation.recordings`, in three groups (solos, notes and
sample-library phrases, mixtures; :func:`~instrec.evaluation.recordings.recording_group`)
and over all files: top-1, masked mean average precision, recall of the present
instruments and documented-absent instruments wrongly added per file, at each system's
threshold, and per instrument. Unknown (file, instrument) pairs are masked out of every score.
``--choose`` picks one of the ``default`` and ``run:`` systems by leave-one-source-out (each
source's files scored by the system chosen on the other sources) and reports the choices.

Systems:

* ``musicnn-tags``: the reference of the real-music issue. The pretrained MTT_musicnn
  tagger (``instrec download musicnn``) used as is: its 50 MagnaTagATune tags averaged
  over the 3-s patches of a file, mapped onto the OpenMIC classes they name
  (``instrec.features.musicnn_frontend.OPENMIC_TAGS``; the other classes get 0), present at 0.5.
  Files shorter than 3 s are zero-padded.
* ``default``: the default model that ships with instrec (``instrec predict`` without a run).
* ``run:DIR``: a trained or exported instrec run, through ``instrec.tagging`` (its thresholds).
"""
from __future__ import annotations

import sys
from pathlib import Path

import _common as C  # noqa: E402  (sets up sys.path for a clean clone)
import numpy as np

from instrec.classes import OPENMIC_CLASSES
from instrec.evaluation.recordings import GROUPS, Recordings, leave_one_source_out, read_recordings, score_groups
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


def run_system(run_dir: str | None, files: list[Path], cache: Path | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(N, C) probabilities and present flags of a run (None: the default model), as ``instrec
    predict`` gives them; the front end's features of the files are kept in ``cache`` (one file
    per front-end description), so runs sharing a front end featurise the recordings once."""
    import hashlib
    import json

    from instrec.tagging.predict import Tagger

    tagger = Tagger(run_dir)
    desc = json.dumps(tagger.frontend.describe(), sort_keys=True)
    path = cache / f"features-{hashlib.sha256(desc.encode()).hexdigest()[:12]}.npz" if cache else None
    names = [str(f) for f in files]
    feats = None
    if path is not None and path.is_file():
        z = np.load(path)
        if z["files"].tolist() == names:
            feats = [z[f"f{i}"] for i in range(len(files))]
    if feats is None:
        feats = [tagger.frontend.features_from_file(f) for f in files]
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, files=np.array(names), **{f"f{i}": f for i, f in enumerate(feats)})
    tags = [tagger.tag_features(f) for f in feats]
    return np.stack([t.probabilities for t in tags]), np.stack([t.present for t in tags]), []


def system_outputs(system: str, files: list[Path], cache: Path | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(N, C) probabilities and present flags of ``system``; with ``cache`` they are kept in
    ``cache/<system>.npz`` and reused while the file list is the same (``run:`` systems are
    keyed by their folder name, so rebuild a run under a new name or clear the cache)."""
    path = cache / (system.replace("/", "_").replace(":", "_") + ".npz") if cache else None
    names = np.array([str(f) for f in files])
    if path is not None and path.is_file():
        z = np.load(path)
        if z["files"].tolist() == names.tolist():
            return z["probs"], z["present"], []
    if system == "musicnn-tags":
        out = musicnn_tags_system(files)
    elif system == "default":
        out = run_system(None, files, cache)
    elif system.startswith("run:"):
        out = run_system(system[4:], files, cache)
    else:
        raise SystemExit(f"unknown system {system!r}")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, files=names, probs=out[0], present=out[1])
    return out


def group_rows(system: str, rec: Recordings, probs: np.ndarray, present: np.ndarray) -> tuple[list, list]:
    """Rows of the systems table (one per group) and of the per-instrument table."""
    rows, per_class = [], []
    for g, s in score_groups(rec, probs, present, OPENMIC_CLASSES).items():
        rows.append({"system": system, "group": g, "files": s["n_files"], "top1": s["top1"], "mean_ap": s["mean_ap"],
                     "recall": s["recall"], "added_per_file": s["added_per_file"]})
        per_class += [{"system": system, "group": g, **r} for r in s["per_class"]]
    return rows, per_class


def issue_targets(system: str, rows: list[dict], per_class: list[dict]) -> list[dict]:
    """The issue's "done when" figures of one system."""
    by = {r["group"]: r for r in rows if r["system"] == system}
    weak = [r for r in per_class if r["system"] == system and r["group"] == "all" and r["present_files"] >= 3
            and not r["ap"] >= 0.4]
    return [C.target(f"{system}: solos top-1", by["solos"]["top1"], ">=", 0.75),
            C.target(f"{system}: solos masked mAP", by["solos"]["mean_ap"], ">=", 0.85),
            C.target(f"{system}: notes and phrases masked mAP", by["notes"]["mean_ap"], ">=", 0.70),
            C.target(f"{system}: mixtures recall", by["mixtures"]["recall"], ">=", 0.80),
            C.target(f"{system}: mixtures wrongly added per file", by["mixtures"]["added_per_file"], "<=", 0.5),
            C.target(f"{system}: instruments in >= 3 files with AP < 0.4 ({', '.join(r['instrument'] for r in weak)})",
                     float(len(weak)), "<=", 0)]


def recipe_rows(recipes: dict[str, list[str]], rows: list[dict],
                per_class: list[dict]) -> tuple[list[dict], list[dict]]:
    """Each recipe's spread over its systems (training seeds): per group, the mean, smallest and
    largest score; per instrument present in >= 3 files, the same of its AP over all files."""
    metrics = ("top1", "mean_ap", "recall", "added_per_file")
    spread = []
    for name, systems in recipes.items():
        for g in (*GROUPS, "all"):
            got = [r for r in rows if r["system"] in systems and r["group"] == g]
            if len(got) == len(systems):
                spread.append({"recipe": name, "systems": len(systems), "group": g,
                               **{f"{m}_{k}": f(np.array([r[m] for r in got], float)) for m in metrics
                                  for k, f in (("mean", np.mean), ("min", np.min), ("max", np.max))}})
    instruments = sorted({r["instrument"] for r in per_class if r["group"] == "all" and r["present_files"] >= 3})
    ap_rows = []
    for inst in instruments:
        row: dict = {"instrument": inst}
        for name, systems in recipes.items():
            aps = np.array([r["ap"] for r in per_class if r["system"] in systems and r["group"] == "all"
                            and r["instrument"] == inst], float)
            row.update({f"{name} mean": aps.mean(), f"{name} min": aps.min(), f"{name} max": aps.max()})
        ap_rows.append(row)
    return spread, ap_rows


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0], default_repeats=1)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder with labels.csv and the recordings")
    p.add_argument("--system", action="append", default=None,
                   help="musicnn-tags, default or run:DIR (repeatable; default: musicnn-tags and default)")
    p.add_argument("--cache", default=None, help="folder keeping each system's per-file outputs for reruns")
    p.add_argument("--note", action="append", default=[], help="a note for the results (what a run is; repeatable)")
    p.add_argument("--recipe", action="append", default=[], metavar="NAME=SYSTEM,SYSTEM,...",
                   help="systems trained from one recipe with other seeds: their mean and range (repeatable)")
    p.add_argument("--choose", action="store_true",
                   help="choose among the default and run: systems by leave-one-source-out")
    args = p.parse_args()
    machine = C.machine_info()
    rec = read_recordings(Path(args.data) / "labels.csv", OPENMIC_CLASSES)
    if args.quick:
        rec = rec.subset(np.isin(np.arange(len(rec.files)), [0, 17, 18, 25]))
    cache = Path(args.cache) if args.cache else None
    rows, per_class, notes, targets, files_rows = [], [], [], [], []
    outputs = {}
    for system in args.system or ["musicnn-tags", "default"]:
        probs, present, sys_notes = system_outputs(system, rec.files, cache)
        outputs[system] = (probs, present)
        r, pc = group_rows(system, rec, probs, present)
        rows += r
        per_class += pc
        if not args.quick:
            targets += issue_targets(system, r, pc)
        notes += sys_notes
        files_rows += [{"system": system, "file": str(f.relative_to(Path(args.data))), "group": g,
                        "probabilities": [round(float(x), 4) for x in pr]}
                       for f, g, pr in zip(rec.files, rec.groups, probs)]
    choice_rows = []
    runs = {k: v for k, v in outputs.items() if k.startswith("run:") or k == "default"}
    if args.choose and len(runs) >= 2:
        probs, present, choice_rows = leave_one_source_out(rec, runs, OPENMIC_CLASSES)
        r, pc = group_rows("leave-one-source-out choice", rec, probs, present)
        rows += r
        per_class += pc
        notes.append("leave-one-source-out choice: each source's files are scored by the run chosen on the other "
                     "sources (table 'choices'); these are held-out scores of the choice procedure.")
    columns = ["system", "group", "files", "top1", "mean_ap", "recall", "added_per_file"]
    C.print_table(f"Real recordings ({Path(args.data).name}, {len(rec.files)} files)", rows, columns)
    if choice_rows:
        C.print_table("Leave-one-source-out choices", choice_rows, list(choice_rows[0]))
    counts = {g: rec.groups.count(g) for g in GROUPS}
    notes = [f"Data: {Path(args.data).name} ({len(rec.files)} labelled recordings: {counts}; licences and credits in "
             "its README). Not in the repository.",
             "Groups (instrec.evaluation.recordings.recording_group): notes = one instrument, from the sample-library "
             "folders or a single note; solos = one instrument, every other class known absent; mixtures = the rest "
             "(several instruments, or partial labels: MUSDB mixes and accompaniment stems, a song with only its "
             "voice documented).",
             "Masked scoring: an instrument neither present nor documented absent in a file is unknown there and "
             "left out of every score. top1: the most probable known instrument sounds (files with a present "
             "instrument); mean_ap: mean over instruments present in some file and absent in another of their AP "
             "over the files where they are known; recall: present pairs tagged present; added_per_file: documented-"
             "absent instruments tagged present, per file.",
             "Choices: the shipped default model's recipe, front end and tag rule were chosen on the 24 solo files "
             "of the earlier development set (read its scores as development scores); choices among systems here "
             "are made by leave-one-source-out (table 'choices'), and --note says what each run is."] + notes
    notes += args.note
    if args.quick:
        notes.append("QUICK MODE: 4 files only.")
    tables = [C.table("systems", "Scores per system and group", rows, columns),
              C.table("per_class", "Per instrument", per_class,
                      ["system", "group", "instrument", "present_files", "absent_files", "ap", "precision",
                       "recall", "f1"]),
              C.table("files", "Per-file probabilities (OpenMIC class order)", files_rows,
                      ["system", "file", "group", "probabilities"])]
    if choice_rows:
        tables.append(C.table("choices", "Leave-one-source-out choices", choice_rows, list(choice_rows[0])))
    recipes = {name: systems.split(",") for name, _, systems in (r.partition("=") for r in args.recipe)}
    unknown = sorted({s for systems in recipes.values() for s in systems} - set(outputs))
    if unknown:
        raise SystemExit(f"--recipe names systems not measured here: {', '.join(unknown)}")
    if recipes:
        spread, ap_rows = recipe_rows(recipes, rows, per_class)
        C.print_table("Recipes over training seeds", spread, list(spread[0]))
        C.print_table("Recipes over training seeds: AP of instruments in >= 3 files", ap_rows, list(ap_rows[0]))
        tables += [C.table("recipes", "Recipes over training seeds: mean, smallest and largest score of their systems",
                           spread, list(spread[0])),
                   C.table("recipe_instruments", "Recipes over training seeds: AP over all files of each instrument "
                           "present in at least three", ap_rows, list(ap_rows[0]))]
    path = C.write_results(args.out, NAME, "Real recordings", args.quick,
                           {"data": str(args.data), "systems": list(outputs), "choose": args.choose},
                           tables, machine, targets, notes)
    C.print_targets(targets)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Front ends on real recordings: how much of the instruments musicnn's MTT and MSD models hear.

A probe, held out by source: every realaudio-dev file becomes one vector (the mean and the
maximum over its 0.96-s rows of a front end's 803 uint8 columns, /255), and for each source a
logistic regression per instrument (scikit-learn, balanced classes, C=1) is trained on the
files of the *other* sources where that instrument is known (present or documented absent)
and predicts the held-out files; the held-out probabilities are scored like any system by
:func:`instrec.evaluation.recordings.score_groups` (present at 0.5). Front ends:
``MTT`` (the default model's), ``MSD`` (MSD_musicnn, trained on full songs of the Million
Song Dataset), ``MTT+MSD`` (both vectors side by side). The probe is trained on real
recordings, so it measures what each front end carries, not a model that ships; instruments
known in fewer than two training files with both values get probability 0.
"""
from __future__ import annotations

import sys
from pathlib import Path

import _common as C  # noqa: E402  (sets up sys.path for a clean clone)
import numpy as np

from instrec.classes import OPENMIC_CLASSES
from instrec.evaluation.recordings import GROUPS, read_recordings, score_groups

NAME = "bench_realaudio_frontends"
DEFAULT_DATA = C.REPO.parent / "shared" / "realaudio-dev"


def file_vectors(model: str, files: list[Path], cache: Path | None) -> np.ndarray:
    """(N, 2 x 803) mean and max over rows of the musicnn front end with ``model``'s weights."""
    path = cache / f"probe-{model}.npz" if cache else None
    names = [str(f) for f in files]
    if path is not None and path.is_file():
        z = np.load(path)
        if z["files"].tolist() == names:
            return z["vectors"]
    from instrec.features.musicnn_frontend import MusicnnFrontEnd

    frontend = MusicnnFrontEnd(model=model)
    rows = [frontend.features_from_file(f).astype(np.float32) / 255.0 for f in files]
    vectors = np.stack([np.r_[r.mean(axis=0), r.max(axis=0)] for r in rows])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, files=np.array(names), vectors=vectors)
    return vectors


def probe(x: np.ndarray, present: np.ndarray, known: np.ndarray, sources: list[str]) -> np.ndarray:
    """(N, C) held-out probabilities: per source, per class, a logistic regression on the others."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    src = np.array(sources)
    out = np.zeros(present.shape, np.float64)
    for s in dict.fromkeys(sources):
        held = src == s
        scaler = StandardScaler().fit(x[~held])
        xt, xh = scaler.transform(x[~held]), scaler.transform(x[held])
        for c in range(present.shape[1]):
            k = known[~held, c]
            y = present[~held, c][k]
            if y.sum() < 2 or (~y).sum() < 2:
                continue
            clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000).fit(xt[k], y)
            out[held, c] = clf.predict_proba(xh)[:, 1]
    return out


def main() -> int:
    p = C.base_parser(__doc__.split("\n\n")[0], default_repeats=1)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="folder with labels.csv and the recordings")
    p.add_argument("--cache", default=None, help="folder keeping the per-file vectors for reruns")
    args = p.parse_args()
    machine = C.machine_info()
    rec = read_recordings(Path(args.data) / "labels.csv", OPENMIC_CLASSES)
    cache = Path(args.cache) if args.cache else None
    vectors = {m: file_vectors(m, rec.files, cache) for m in ("MTT_musicnn", "MSD_musicnn")}
    systems = {"MTT": vectors["MTT_musicnn"], "MSD": vectors["MSD_musicnn"],
               "MTT+MSD": np.concatenate([vectors["MTT_musicnn"], vectors["MSD_musicnn"]], axis=1)}
    rows, per_class = [], []
    for name, x in systems.items():
        probs = probe(x, rec.present, rec.known, rec.sources)
        for g, s in score_groups(rec, probs, probs > 0.5, OPENMIC_CLASSES).items():
            rows.append({"frontend": name, "group": g, "files": s["n_files"], "top1": s["top1"],
                         "mean_ap": s["mean_ap"], "recall": s["recall"], "added_per_file": s["added_per_file"]})
            if g == "all":
                per_class += [{"frontend": name, **r} for r in s["per_class"]]
    columns = ["frontend", "group", "files", "top1", "mean_ap", "recall", "added_per_file"]
    C.print_table(f"Front-end probe held out by source ({Path(args.data).name}, {len(rec.files)} files)",
                  rows, columns)
    notes = [f"Data: {Path(args.data).name} ({len(rec.files)} files; groups {', '.join(GROUPS)}); "
             "not in the repository.",
             "Probe: logistic regression per instrument on the mean and max of the front end's rows, trained on the "
             "other sources' files where the instrument is known, scored on the held-out source; masked scoring as "
             "in bench_realaudio. It measures the front ends on real audio; it is not a shipped model.",
             "Few files per instrument (2-12 present): differences of a few hundredths are noise."]
    path = C.write_results(args.out, NAME, "Front ends on real recordings (probe)", args.quick,
                           {"data": str(args.data)},
                           [C.table("probe", "Held-out probe scores per front end and group", rows, columns),
                            C.table("per_class", "Per instrument (all files)", per_class,
                                    ["frontend", "instrument", "present_files", "absent_files", "ap", "recall"])],
                           machine, [], notes)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Turning a user's audio collection into an OpenMIC-layout dataset.

Each file becomes one clip of ``frames`` frames (0.96 s each; 10 frames, like OpenMIC's
10-second clips): longer files are cut to their first ``frames`` frames and shorter ones
are padded by repeating their frames, and the dataset's ``featurize-notes.csv`` says
which. Labels come from an optional CSV in OpenMIC's aggregated-labels format
(``sample_key,instrument,relevance``); a clip's sample key is its file name without suffix.
"""
from __future__ import annotations

import csv
import functools
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from instrec._io import InstrecError, OutputLock, atomic_write_json, atomic_write_text, check_output_dir
from instrec.classes import OPENMIC_CLASSES
from instrec.data.layout import FEATURIZE_NOTES_FILE, FRONTEND_FILE
from instrec.data.openmic import sample_key_problem, write_openmic
from instrec.device import is_accelerator, resolve_device
from instrec.features.audio import expand_inputs
from instrec.features.feed import fed_features
from instrec.features.frontends import get_frontend


@dataclass
class FeaturizeReport:
    out: Path
    n_clips: int
    failures: list[tuple[str, str]] = field(default_factory=list)


def read_label_csv(path: str | Path) -> dict[str, dict[str, float]]:
    """``sample_key,instrument,relevance`` rows (header optional) -> {key: {instrument: relevance}}."""
    path = Path(path)
    if not path.is_file():
        raise InstrecError(f"{path}: label file not found")
    try:
        return _read_labels(path)
    except UnicodeDecodeError as exc:
        raise InstrecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read_labels(path: Path) -> dict[str, dict[str, float]]:
    labels: dict[str, dict[str, float]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if not row or (line == 1 and row[:3] == ["sample_key", "instrument", "relevance"]):
                continue
            if len(row) < 3:
                raise InstrecError(f"{path}: line {line}: expected sample_key,instrument,relevance")
            if not row[1].strip():
                raise InstrecError(f"{path}: line {line}: the instrument name is empty (a run needs a name per class)")
            try:
                value = float(row[2])
            except ValueError:
                raise InstrecError(f"{path}: line {line}: relevance {row[2]!r} is not a number") from None
            if not 0.0 <= value <= 1.0:
                raise InstrecError(f"{path}: line {line}: relevance {value} is outside [0, 1]")
            labels.setdefault(row[0], {})[row[1]] = value
    return labels


def _features_or_fail(fe, frames: int, path: str) -> tuple[np.ndarray | None, str, str | None]:
    """(features fitted to ``frames``, the file's notes, None), or (None, "", the problem)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            x = fe.features_from_file(path)
    except InstrecError as exc:
        return None, "", str(exc)
    return _fitted(x, frames, [str(w.message) for w in caught], None)


def _fitted(x: np.ndarray | None, frames: int, notes: list[str],
            message: str | None) -> tuple[np.ndarray | None, str, str | None]:
    """A file's features fitted to ``frames`` rows and its notes joined, or its problem."""
    if message is not None:
        return None, "", message
    x, note = fit_frames(x, frames)
    return x, " | ".join(notes + ([note] if note else [])), None


def fit_frames(feats: np.ndarray, frames: int) -> tuple[np.ndarray, str]:
    """Cut or repeat-pad (T, F) features to exactly ``frames`` rows; say what was done."""
    n = len(feats)
    if n == frames:
        return feats, ""
    if n > frames:
        return feats[:frames], f"cut from {n} to {frames} frames"
    reps = -(-frames // n)
    return np.tile(feats, (reps, 1))[:frames], f"padded from {n} to {frames} frames by repetition"


def featurize(inputs: Iterable[str | Path], out: str | Path, frontend: str = "vggish", labels: str | Path | None = None,
              weights_dir: str | Path | None = None, frames: int = 10, test_fraction: float = 0.25, seed: int = 0,
              overwrite: bool = False, progress: bool = True, threads: int | None = None,
              jobs: int = 1, device: str = "auto") -> FeaturizeReport:
    """Featurise audio files into ``out`` (OpenMIC layout plus ``frontend.json``). ``threads``:
    torch intra-op threads, 0 for the policy of :mod:`instrec.runinfo`, None to keep the
    current count. ``jobs``: worker processes across files, 0 for one per usable core
    (:func:`instrec.runinfo.plan_file_workers`). ``device``: where the front end's network
    runs (:mod:`instrec.device`); on a GPU the workers decode (:mod:`instrec.features.feed`)."""
    device = resolve_device(device)  # a missing GPU is an error before any file is read
    out = Path(out)
    if not (isinstance(test_fraction, (int, float)) and 0.0 <= test_fraction < 1.0):
        raise InstrecError(f"{out}: test fraction must be in [0, 1), got {test_fraction!r}")
    if not (isinstance(frames, int) and frames >= 1):
        raise InstrecError(f"{out}: frames per clip must be an integer >= 1, got {frames!r}")
    # The folder is locked (and so proved writable) before any file is decoded.
    with OutputLock(out):
        check_output_dir(out, overwrite)
        return _featurize(inputs, out, frontend, labels, weights_dir, frames, test_fraction, seed, progress, threads,
                          jobs, device)


def _featurize(inputs: Iterable[str | Path], out: Path, frontend: str, labels: str | Path | None,
               weights_dir: str | Path | None, frames: int, test_fraction: float, seed: int, progress: bool,
               threads: int | None, jobs: int, device: str = "cpu") -> FeaturizeReport:
    from instrec.parallel import fork_available, inherited_map
    from instrec.runinfo import plan_file_workers, threads_for_workers

    table = read_label_csv(labels) if labels else {}
    paths = expand_inputs(inputs)
    if not paths:
        raise InstrecError("no audio files found in the given inputs")
    failures: list[tuple[int, str, str]] = []  # (input position, path, message)
    accepted: dict[str, tuple[int, str]] = {}  # sample key -> (input position, path)
    for i, path in enumerate(paths):
        key = Path(path).stem
        problem = sample_key_problem(key)
        if problem:  # the partition files hold one key a line: such a name would not read back
            failures.append((i, str(path), f"{path}: the file name cannot be a sample key ({problem}); rename it"))
        elif key in accepted:
            failures.append((i, str(path), f"{path}: sample key {key!r} already used by another file"))
        else:
            accepted[key] = (i, str(path))
    jobs, threads = plan_file_workers(len(accepted), jobs, threads, fork_available())
    setup = threads_for_workers(jobs, threads)
    fe = get_frontend(frontend, weights_dir=weights_dir, device=device)
    keys, files, feats, notes = [], [], [], []
    if is_accelerator(device):
        results = (_fitted(x, frames, notes, message) for _, x, notes, message in
                   fed_features(fe, [p for _, p in accepted.values()], jobs, setup, progress, "featurize"))
    else:
        results = inherited_map(functools.partial(_features_or_fail, fe, frames), [p for _, p in accepted.values()],
                                jobs, setup, progress=progress, desc="featurize", total=len(accepted))
    for (key, (i, path)), (x, note, message) in zip(accepted.items(), results):
        if message is not None:
            failures.append((i, path, message))
            continue
        keys.append(key)
        files.append(path)
        feats.append(x)
        notes.append(note)
    failures = [(path, message) for _, path, message in sorted(failures)]
    if not keys:
        raise InstrecError("no file could be featurised: " + "; ".join(m for _, m in failures[:3]))
    if not any(table.get(k) for k in keys) and table:
        warnings.warn(f"{labels}: no label matches a featurised file (sample keys are file names without suffix)")

    instruments = sorted({i for d in table.values() for i in d})
    classes = list(OPENMIC_CLASSES) if set(instruments) <= set(OPENMIC_CLASSES) else instruments
    y_true = np.zeros((len(keys), len(classes)), np.float32)
    y_mask = np.zeros((len(keys), len(classes)), bool)
    col = {c: i for i, c in enumerate(classes)}
    for r, key in enumerate(keys):
        for inst, value in table.get(key, {}).items():
            y_true[r, col[inst]], y_mask[r, col[inst]] = value, True
    unknown = sorted(set(table) - set(keys))
    if unknown:
        warnings.warn(f"{labels}: {len(unknown)} labelled keys have no audio file (first: {unknown[0]})")

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    n_test = min(int(round(len(keys) * test_fraction)), len(keys) - 1) if len(keys) > 1 else 0
    test = sorted(keys[i] for i in order[:n_test])
    train = sorted(keys[i] for i in order[n_test:])
    write_openmic(out, np.stack(feats), y_true, y_mask, np.array(keys), classes, train, test)
    atomic_write_json(out / FRONTEND_FILE, fe.describe())
    buf = io.StringIO()
    csv.writer(buf).writerows([["sample_key", "file", "note"], *([k, p, n] for k, p, n in zip(keys, files, notes))])
    atomic_write_text(out / FEATURIZE_NOTES_FILE, buf.getvalue())
    return FeaturizeReport(out, len(keys), failures)

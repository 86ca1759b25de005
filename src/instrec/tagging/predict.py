"""Tagging audio files with a trained run: the inference module behind ``instrec predict``.

Files are featurised with the run's front end, cut into consecutive windows of the
training clip length (``n_frames`` frames of 0.96 s), and every window goes through the
model. The file's clip-level probability of an instrument is the maximum over windows
(an instrument is present in the file if it is present anywhere); per-frame outputs come
from the window that covers the frame.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from instrec._io import InstrecError
from instrec.run import load_model

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")
FRAME_SECONDS = 0.96
#: Models with per-frame class probabilities (and, for the first two, attention weights).
FRAME_MODELS = ("bilstm-att", "att", "fc-t")


@dataclass
class FileTags:
    """Tags of one file. Shapes: ``probabilities``/``present`` (C,), ``frame_probabilities``
    and ``attention`` (T, C) or None; ``frame_seconds`` is the hop between frames."""

    path: str
    probabilities: np.ndarray
    present: np.ndarray
    n_frames: int
    n_windows: int
    aggregation: str
    frame_probabilities: np.ndarray | None = None
    attention: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    frame_seconds: float = FRAME_SECONDS


@dataclass
class TagResults:
    """Everything ``predict`` returns: tags of the good files, errors of the bad ones."""

    classes: list[str]
    files: list[FileTags]
    failures: list[tuple[str, str]]

    @property
    def probabilities(self) -> np.ndarray:
        """(N, C) clip-level probabilities of the successfully tagged files."""
        return np.stack([f.probabilities for f in self.files]) if self.files else np.zeros((0, len(self.classes)))

    def to_dataframe(self):
        """One row per file, one probability column per instrument (needs pandas)."""
        import pandas as pd

        frame = pd.DataFrame(self.probabilities, columns=self.classes)
        frame.insert(0, "file", [f.path for f in self.files])
        return frame


class Tagger:
    """A trained model plus its front end and decision thresholds, loaded once."""

    def __init__(self, run_dir: str | Path, frontend: str | None = None, weights_dir: str | Path | None = None,
                 tuned_thresholds: bool = True):
        self.run_dir = Path(run_dir)
        self.model, self.config = load_model(self.run_dir)
        self.classes: list[str] = list(self.config["classes"])
        self.n_frames: int = int(self.config["n_frames"])
        trained_on = self.config.get("frontend", {}).get("name", "vggish")
        if frontend is not None and frontend != trained_on:
            raise InstrecError(f"{self.run_dir}: the model was trained on {trained_on!r} features; "
                               f"predicting with front end {frontend!r} would give meaningless tags")
        self.frontend_name = trained_on
        self.weights_dir = weights_dir
        self._frontend = None
        default = [0.5] * len(self.classes)
        self.thresholds = np.asarray(self.config.get("thresholds", default) if tuned_thresholds else default)
        # Instruments the training data never labelled positive: the model cannot know them.
        unknown = set(self.config.get("untrained_classes", []))
        self.trained = np.array([c not in unknown for c in self.classes])

    @property
    def frontend(self):
        if self._frontend is None:
            from instrec.features.frontends import get_frontend

            self._frontend = get_frontend(self.frontend_name, weights_dir=self.weights_dir)
        return self._frontend

    def windows(self, n: int) -> list[tuple[int, int]]:
        """(start, stop) frame ranges covering ``n`` frames; the last window is moved back to
        end at the last frame so every window has the training length when possible."""
        w = self.n_frames
        if n <= w:
            return [(0, n)]
        starts = list(range(0, n - w + 1, w))
        if starts[-1] + w < n:
            starts.append(n - w)
        return [(s, s + w) for s in starts]

    def tag_features(self, features: np.ndarray, path: str = "<features>") -> FileTags:
        """Tag ``features`` (T, F) on the 0-255 scale (uint8 from a front end)."""
        from instrec.models.inference import run_model

        x = np.asarray(features, dtype=np.float32) / 255.0
        n = len(x)
        spans = self.windows(n)
        notes: list[str] = []
        if n < self.n_frames and not getattr(self.model, "variable_length", True):
            reps = -(-self.n_frames // n)
            x = np.tile(x, (reps, 1))[: self.n_frames]
            notes.append(f"{n} frames padded to {self.n_frames} by repetition for model {self.config['model']!r}")
            spans = [(0, self.n_frames)]
        batch = np.stack([x[a:b] for a, b in spans])
        preds = run_model(self.model, batch)
        clip = preds.clip.max(axis=0)
        frame = _stitch(preds.frame, spans, len(x)) if preds.frame is not None else None
        att = _stitch(preds.attention, spans, len(x)) if preds.attention is not None else None
        if frame is not None and len(frame) > n:
            frame, att = frame[:n], (att[:n] if att is not None else None)
        aggregation = "single window" if len(spans) == 1 else f"max over {len(spans)} windows of {self.n_frames} frames"
        if not self.trained.all():
            notes.append("never present: " + ", ".join(c for c, t in zip(self.classes, self.trained) if not t)
                         + " (no labelled positive in the training data)")
        return FileTags(path, clip, (clip > self.thresholds) & self.trained, n, len(spans), aggregation, frame, att,
                        notes)

    def tag_file(self, path: str | Path) -> FileTags:
        """Featurise and tag one audio file; warnings from decoding become notes."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            feats = self.frontend.features_from_file(path)
        tags = self.tag_features(feats, str(path))
        tags.notes = [str(w.message) for w in caught] + tags.notes
        return tags


def _stitch(per_window: np.ndarray, spans: list[tuple[int, int]], n: int) -> np.ndarray:
    """Per-frame values (n, C) from (W, w, C) window outputs; a frame seen by two windows
    keeps the value of the first."""
    out = np.full((n, per_window.shape[-1]), np.nan, dtype=np.float32)
    for values, (a, b) in zip(per_window, spans):
        fresh = np.isnan(out[a:b, 0])
        out[a:b][fresh] = values[: b - a][fresh]
    return out


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given plus audio files found (recursively, sorted) in given folders."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_SUFFIXES))
        else:
            paths.append(p)
    return paths


def predict(run_dir: str | Path, inputs: Iterable[str | Path], per_second: bool = False,
            frontend: str | None = None, weights_dir: str | Path | None = None, progress: bool = False,
            tuned_thresholds: bool = True) -> TagResults:
    """Tag audio files (or folders of them) with the model in ``run_dir``.

    Bad files do not stop the batch: they are listed in ``failures`` as (path, message).
    With ``per_second`` the model must have frame-level outputs."""
    tagger = Tagger(run_dir, frontend=frontend, weights_dir=weights_dir, tuned_thresholds=tuned_thresholds)
    if per_second and tagger.config["model"] not in FRAME_MODELS:
        raise InstrecError(f"{run_dir}: model {tagger.config['model']!r} has no per-frame output; "
                           f"use a run of {', '.join(FRAME_MODELS)} for per-second tags")
    paths = expand_inputs(inputs)
    files, failures = [], []
    iterator: Any = paths
    if progress:
        from tqdm import tqdm

        iterator = tqdm(paths, desc="tagging", unit="file")
    for path in iterator:
        try:
            tags = tagger.tag_file(path)
        except InstrecError as exc:
            failures.append((str(path), str(exc)))
            continue
        files.append(tags)
    return TagResults(tagger.classes, files, failures)


def format_results(results: TagResults, fmt: str = "csv", per_second: bool = False) -> str:
    """Render tags as CSV or JSON text.

    CSV, clip level: one row per file: ``file, n_frames, n_windows, aggregation, notes``, then
    per instrument its probability and ``<instrument>_present`` (0/1).
    CSV, per second: one row per file, frame and instrument: ``file, frame, start_s, end_s,
    instrument, probability, attention`` (attention empty where the model has none)."""
    import csv
    import io
    import json

    if fmt == "json":
        doc = {"classes": results.classes, "files": [], "failures": [
            {"file": p, "error": e} for p, e in results.failures]}
        for f in results.files:
            item: dict[str, Any] = {
                "file": f.path, "n_frames": f.n_frames, "n_windows": f.n_windows, "aggregation": f.aggregation,
                "notes": f.notes, "probabilities": dict(zip(results.classes, map(float, f.probabilities))),
                "present": [c for c, p in zip(results.classes, f.present) if p]}
            if per_second and f.frame_probabilities is not None:
                item["frame_seconds"] = f.frame_seconds
                item["frame_probabilities"] = np.round(f.frame_probabilities, 5).tolist()
                if f.attention is not None:
                    item["attention"] = np.round(f.attention, 5).tolist()
            doc["files"].append(item)
        return json.dumps(doc, indent=2) + "\n"
    if fmt != "csv":
        raise InstrecError(f"unknown output format {fmt!r}; choose csv or json")
    buf = io.StringIO()
    writer = csv.writer(buf)
    if per_second:
        writer.writerow(["file", "frame", "start_s", "end_s", "instrument", "probability", "attention"])
        for f in results.files:
            for t in range(f.n_frames):
                for c, name in enumerate(results.classes):
                    att = "" if f.attention is None else f"{f.attention[t, c]:.5f}"
                    writer.writerow([f.path, t, f"{t * f.frame_seconds:.2f}", f"{(t + 1) * f.frame_seconds:.2f}",
                                     name, f"{f.frame_probabilities[t, c]:.5f}", att])
        return buf.getvalue()
    writer.writerow(["file", "n_frames", "n_windows", "aggregation", "notes", *results.classes,
                     *(f"{c}_present" for c in results.classes)])
    for f in results.files:
        writer.writerow([f.path, f.n_frames, f.n_windows, f.aggregation, " | ".join(f.notes),
                         *(f"{p:.5f}" for p in f.probabilities), *(int(b) for b in f.present)])
    return buf.getvalue()

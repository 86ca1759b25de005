"""Tags as text: clip-level or per-second CSV, and JSON (JAMS: :mod:`instrec.tagging.jams_output`)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from instrec._io import InstrecError, json_text
from instrec.tagging.predict import TagResults

FORMATS = ("csv", "json")


def format_results(results: TagResults, fmt: str = "csv", per_second: bool = False) -> str:
    """Render tags as CSV or JSON text.

    CSV, clip level: one row per file: ``file, n_frames, n_windows, aggregation, notes``, then
    per instrument its probability and ``<instrument>_present`` (0/1).
    CSV, per second: one row per file, frame and instrument: ``file, frame, start_s, end_s,
    instrument, probability, attention`` (attention empty where the model has none)."""
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
        return json_text(doc)  # strict JSON: a NaN would be written as null, never as NaN
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


def output_names(results: TagResults, suffix: str) -> list[str]:
    """A distinct ``<stem><suffix>`` file name per tagged file (``<stem>-2<suffix>`` on a clash)."""
    names: list[str] = []
    for f in results.files:
        stem, k = Path(f.path).stem, 1
        name = f"{stem}{suffix}"
        while name in names:
            k += 1
            name = f"{stem}-{k}{suffix}"
        names.append(name)
    return names


def readable(results: TagResults, top: int = 3) -> str:
    """What a person reads: per file the instruments tagged present, most probable first, each
    with its probability and the threshold it passed; when none passed, the ``top`` most
    probable. Instruments the model never learned are not listed."""
    thresholds = results.thresholds if results.thresholds is not None else np.full(len(results.classes), 0.5)
    trained = results.trained if results.trained is not None else np.ones(len(results.classes), bool)
    lines = []
    for f in results.files:
        order = [c for c in np.argsort(-f.probabilities, kind="stable") if trained[c]]
        present = [c for c in order if f.present[c]]
        if present:
            heard = ", ".join(f"{results.classes[c]} {f.probabilities[c]:.2f} (threshold {thresholds[c]:.2f})"
                              for c in present)
        else:
            heard = "nothing above its threshold; most probable: " + ", ".join(
                f"{results.classes[c]} {f.probabilities[c]:.2f} (threshold {thresholds[c]:.2f})" for c in order[:top])
        lines.append(f"{f.path} ({f.seconds:.1f} s): {heard}")
    return "".join(line + "\n" for line in lines)

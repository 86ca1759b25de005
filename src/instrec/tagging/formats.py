"""Tags as files people and programs read: clip-level or per-second CSV, JSON, and JAMS
(one ``.jams`` per audio file, ``tag_open`` annotations, for the MIR tool chain)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

import jams
import numpy as np

from instrec import __version__
from instrec._io import InstrecError, atomic_write_text
from instrec.tagging.predict import FileTags, TagResults

FORMATS = ("csv", "json", "jams")


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


def to_jams(tags: FileTags, classes: Sequence[str], source: str = "instrec") -> jams.JAMS:
    """One JAMS document for one file: a ``tag_open`` annotation per instrument.

    With per-frame outputs every 0.96-s frame is an observation (time, duration,
    value = the instrument, confidence = its frame probability); without them, one
    observation spans the file with the clip-level probability. The clip-level
    probability and present flag go into each annotation's sandbox."""
    jam = jams.JAMS()
    jam.file_metadata.duration = float(tags.seconds)
    jam.file_metadata.title = Path(tags.path).name
    for c, name in enumerate(classes):
        ann = jams.Annotation(namespace="tag_open", time=0, duration=float(tags.seconds))
        ann.annotation_metadata.data_source = source
        ann.annotation_metadata.annotation_tools = f"instrec {__version__}"
        ann.sandbox.update(instrument=name, clip_probability=float(tags.probabilities[c]),
                           present=bool(tags.present[c]))
        if tags.frame_probabilities is None:
            ann.append(time=0.0, duration=float(tags.seconds), value=name, confidence=float(tags.probabilities[c]))
        else:
            for t, prob in enumerate(tags.frame_probabilities[:, c]):
                start = t * tags.frame_seconds
                ann.append(time=start, duration=float(min(tags.frame_seconds, max(0.0, tags.seconds - start))),
                           value=name, confidence=float(prob))
        jam.annotations.append(ann)
    return jam


def jams_names(results: TagResults) -> list[str]:
    """A distinct ``<stem>.jams`` file name per tagged file (``<stem>-2.jams`` on a clash)."""
    names, seen = [], set()
    for f in results.files:
        stem, k = Path(f.path).stem, 1
        name = f"{stem}.jams"
        while name in seen:
            k += 1
            name = f"{stem}-{k}.jams"
        seen.add(name)
        names.append(name)
    return names


def write_jams(results: TagResults, out_dir: str | Path, source: str = "instrec") -> list[Path]:
    """Write one validated ``.jams`` file per tagged file into ``out_dir`` (atomically each)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for f, name in zip(results.files, jams_names(results)):
        jam = to_jams(f, results.classes, source)
        jam.validate()
        paths.append(atomic_write_text(out / name, jam.dumps(indent=1) + "\n"))
    return paths

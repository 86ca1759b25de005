"""Tags as text: clip-level or per-second CSV, and JSON (JAMS: :mod:`instrec.tagging.jams_output`)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from instrec._io import InstrecError, one_line
from instrec.tagging.results import FileTags, TagResults
from instrec.tagging.segments import file_segments, format_ranges

FORMATS = ("csv", "json")


def header_lines(results: TagResults) -> list[str]:
    """What every output states before its tags: the threshold policy, each learned
    instrument's threshold, the instruments the run never learned (no probability, never
    present), and the per-second policy (models with frame outputs)."""
    thresholds, untrained = _thresholds(results), set(results.untrained)
    lines = [f"threshold: {results.threshold_description}",
             "thresholds: " + ", ".join(f"{c}={t:.2f}" for c, t in zip(results.classes, thresholds)
                                        if c not in untrained)]
    if results.untrained:
        lines.append("not learned (no labelled positive in the training data; no probability, never present): "
                     + ", ".join(results.untrained))
    if results.frame_policy:
        lines.append(results.frame_policy)
    return lines


#: Lines starting with ``#`` before the column names of every CSV output (:func:`csv_header`).
CSV_HEADER_LINES = 5
#: The per-second line of a CSV header when the model has no per-frame output.
NO_FRAME_POLICY = "per second: none (this model has no per-frame output)"


def csv_header(results: TagResults) -> list[str]:
    """The CSV's :data:`CSV_HEADER_LINES` header lines, always the same five: the threshold
    policy, each learned instrument's threshold, the instruments never learned (``not learned:
    none`` when every one was), the per-second policy (:data:`NO_FRAME_POLICY` without frame
    outputs), then the ``status``: complete, or partial when the run was interrupted
    (``results.interrupted``). A fixed count, so a reader skips them without treating ``#`` in a
    file name as a comment."""
    stated = header_lines(results)
    lines = stated[:3] if results.untrained else [*stated[:2], "not learned: none"]
    lines.append(results.frame_policy or NO_FRAME_POLICY)
    lines.append(status_line(results))
    return lines


def status_line(results: TagResults) -> str:
    """``status: complete ...`` or ``status: PARTIAL ...`` (an interrupted run)."""
    done = f"{len(results.files)} file(s) tagged, {len(results.failures)} failed"
    if results.interrupted is None:
        return f"status: complete, {done}"
    return (f"status: PARTIAL, interrupted after {results.interrupted[0]} of {results.interrupted[1]} file(s): "
            f"{done}; the others were not tagged")


class _Rows:
    """``csv.writer`` rows; a row whose cells hold a carriage return is written fully quoted
    (the writer quotes only the line terminator's characters, so a bare CR would split the row)."""

    def __init__(self, buf: io.StringIO) -> None:
        self.plain = csv.writer(buf, lineterminator="\n")
        self.quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, row: list) -> None:
        (self.quoted if any("\r" in str(c) for c in row) else self.plain).writerow(row)


def _thresholds(results: TagResults) -> np.ndarray:
    return results.thresholds if results.thresholds is not None else np.full(len(results.classes), 0.5)


def _number(value: float, digits: int = 5) -> str:
    """A probability cell: empty for NaN (an instrument the run never learned)."""
    return "" if np.isnan(value) else f"{value:.{digits}f}"


def _json_values(values: np.ndarray) -> list:
    """Nested lists of rounded floats, NaN as null (JSON has no NaN)."""
    rounded = np.round(np.asarray(values, dtype=np.float64), 5)
    return np.where(np.isnan(rounded), None, rounded).tolist()


def segments_of(tags: FileTags, classes: list[str]) -> dict[str, list[tuple[float, float]]]:
    """Instrument -> (start_s, end_s) ranges of its active frames (empty without per-frame decisions)."""
    if tags.frame_present is None:
        return {}
    return file_segments(tags.frame_present, classes, tags.frame_seconds, tags.seconds)


def segments_text(tags: FileTags, classes: list[str]) -> str:
    """``violin 0:12-0:31, 1:05-1:40; flute 0:02-0:09``: every instrument's time ranges."""
    return "; ".join(f"{name} {format_ranges(r)}" for name, r in segments_of(tags, classes).items())


def format_results(results: TagResults, fmt: str = "csv", per_second: bool = False) -> str:
    """Render tags as CSV or JSON text. Both state the threshold policy; instruments the
    run never learned have no probability (empty cell, JSON null) and are never present.

    CSV: exactly :data:`CSV_HEADER_LINES` lines starting with ``#`` first (:func:`csv_header`),
    then the column names; read it back with :func:`parse_csv`, or
    ``pandas.read_csv(path, skiprows=5)`` (not ``comment="#"``, which cuts a file name at a
    ``#``). A name with a newline, tab or carriage return is quoted; a name that is not valid
    UTF-8 is written as its raw bytes (read with ``errors="surrogateescape"``). Clip level: one row per
    file: ``file, n_frames, n_windows, aggregation, notes``, then per instrument its
    probability and ``<instrument>_present`` (0/1), and ``segments`` (:func:`segments_text`: when
each instrument plays, under the frame policy of the header). Per second: one row per file, frame and
    instrument: ``file, frame, start_s, end_s, instrument, probability, present, attention``
    (attention empty where the model has none).

    JSON: ``threshold`` (``policy``, ``description``, per-instrument ``values``),
    ``frame_policy``, ``not_learned``, ``classes``, ``files`` (per file ``probabilities``, ``present``,
    ``long_file``, ``segments`` (instrument -> [[start_s, end_s], ...]); per
    second also ``frame_probabilities``, ``frame_present`` (0/1) and ``attention``, (T, C)
    lists) and ``failures``."""
    if fmt == "json":
        return _json(results, per_second)
    if fmt != "csv":
        raise InstrecError(f"unknown output format {fmt!r}; choose csv or json")
    buf = io.StringIO()
    for line in csv_header(results):
        buf.write(f"# {line}\n")
    writer = _Rows(buf)
    if per_second:
        writer.writerow(["file", "frame", "start_s", "end_s", "instrument", "probability", "present", "attention"])
        for f in results.files:
            for t in range(f.n_frames):
                for c, name in enumerate(results.classes):
                    prob = f.frame_probabilities[t, c]
                    att = "" if f.attention is None else _number(f.attention[t, c])
                    present = "" if np.isnan(prob) else int(f.frame_present[t, c])
                    writer.writerow([f.path, t, f"{t * f.frame_seconds:.2f}", f"{(t + 1) * f.frame_seconds:.2f}",
                                     name, _number(prob), present, att])
        return buf.getvalue()
    writer.writerow(["file", "n_frames", "n_windows", "aggregation", "notes", *results.classes,
                     *(f"{c}_present" for c in results.classes), "segments"])
    for f in results.files:
        writer.writerow([f.path, f.n_frames, f.n_windows, f.aggregation, " | ".join(f.notes),
                         *(_number(p) for p in f.probabilities),
                         *("" if np.isnan(p) else int(b) for p, b in zip(f.probabilities, f.present)),
                         segments_text(f, results.classes)])
    return buf.getvalue()


def _json(results: TagResults, per_second: bool) -> str:
    doc: dict[str, Any] = {
        "threshold": {"policy": results.threshold, "description": results.threshold_description,
                      "values": dict(zip(results.classes, map(float, _thresholds(results))))},
        "status": status_line(results).removeprefix("status: "),
        "frame_policy": results.frame_policy, "not_learned": results.untrained, "classes": results.classes, "files": [],
        "failures": [{"file": p, "error": e} for p, e in results.failures]}
    for f in results.files:
        item: dict[str, Any] = {
            "file": f.path, "n_frames": f.n_frames, "n_windows": f.n_windows, "aggregation": f.aggregation,
            "notes": f.notes, "probabilities": dict(zip(results.classes, _json_values(f.probabilities))),
            "present": [c for c, p in zip(results.classes, f.present) if p], "long_file": f.long_file,
            "segments": {c: [[round(a, 3), round(b, 3)] for a, b in r]
                         for c, r in segments_of(f, results.classes).items()}}
        if per_second and f.frame_probabilities is not None:
            item["frame_seconds"] = f.frame_seconds
            item["frame_probabilities"] = _json_values(f.frame_probabilities)
            item["frame_present"] = f.frame_present.astype(int).tolist()
            if f.attention is not None:
                item["attention"] = _json_values(f.attention)
        doc["files"].append(item)
    return json.dumps(doc, indent=2) + "\n"


def parse_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """Read :func:`format_results` CSV text back: its header lines (without ``# ``) and its rows.
    Only the lines before the column names are header lines: a file name starting with ``#``
    is a row, and a quoted name may hold a newline."""
    comments = []
    rest = text
    while rest.startswith("#"):
        line, _, rest = rest.partition("\n")
        comments.append(line[1:].strip())
    return comments, list(csv.DictReader(io.StringIO(rest, newline="")))


#: Longest derived file name (bytes; file systems allow 255), before its suffix.
MAX_STEM_BYTES = 180


def output_names(results: TagResults, suffix: str) -> list[str]:
    """A distinct ``<stem><suffix>`` file name per tagged file. Files of the same stem (a/song.wav,
    b/song.flac) get ``<stem>-<hash><suffix>``, and a stem longer than :data:`MAX_STEM_BYTES`
    is cut and gets the hash too: 8 hex digits of the sha256 of the file's path as given, so
    the name is the same on every run, whatever the other inputs' order."""
    stems = [Path(f.path).stem for f in results.files]
    counts = {stem: stems.count(stem) for stem in stems}
    names: list[str] = []
    for f, stem in zip(results.files, stems):
        raw = os.fsencode(stem)
        if counts[stem] > 1 or len(raw) > MAX_STEM_BYTES:
            digest = hashlib.sha256(os.fsencode(f.path)).hexdigest()[:8]
            stem = os.fsdecode(raw[:MAX_STEM_BYTES].decode("utf-8", "ignore").encode("utf-8")) \
                if len(raw) > MAX_STEM_BYTES else stem
            stem = f"{stem}-{digest}"
        names.append(f"{stem}{suffix}")
    return names


def readable(results: TagResults, top: int = 3, per_second: bool = False) -> str:
    """What a person reads: the threshold policy (and the per-second policy where the model
    has one) and the instruments the run never learned, then per file the instruments tagged
    present, most probable first, each with its probability and the threshold it passed; when
    none passed, the ``top`` most probable. Instruments the model never learned are not listed.
    For a file longer than one window (or every file with ``per_second``), each present
    instrument's time ranges follow on a line of its own: ``  violin 0:12-0:31, 1:05-1:40``."""
    thresholds = _thresholds(results)
    trained = results.trained if results.trained is not None else np.ones(len(results.classes), bool)
    head = header_lines(results)
    lines = [head[0]] + ([head[2]] if results.untrained else []) + (
        [results.frame_policy] if results.frame_policy else [])
    for f in results.files:
        order = [c for c in np.argsort(-np.nan_to_num(f.probabilities, nan=-1.0), kind="stable") if trained[c]]
        present = [c for c in order if f.present[c]]
        if present and f.long_file:  # present: the per-second decisions held it long enough
            held = f.frame_present.sum(axis=0) * f.frame_seconds
            heard = ", ".join(f"{results.classes[c]} {f.probabilities[c]:.2f} (held {held[c]:.0f} s)" for c in present)
        elif present:
            heard = ", ".join(f"{results.classes[c]} {f.probabilities[c]:.2f} (threshold {thresholds[c]:.2f})"
                              for c in present)
        else:
            heard = "nothing above its threshold; most probable: " + ", ".join(
                f"{results.classes[c]} {f.probabilities[c]:.2f} (threshold {thresholds[c]:.2f})" for c in order[:top])
        lines.append(f"{one_line(f.path)} ({f.seconds:.1f} s): {heard}")
        if f.frame_present is not None and (f.long_file or per_second):
            ranges = segments_of(f, results.classes)
            # A file no longer than one clip keeps its clip answer even where no frame passes.
            quiet = [results.classes[c] for c in present if results.classes[c] not in ranges]
            lines += [f"  {name} {format_ranges(r)}" for name, r in ranges.items()]
            if quiet:
                lines.append(f"  {', '.join(quiet)}: tagged present, but no second passes the frame threshold")
            elif not ranges:
                lines.append("  per second: no instrument active in any frame")
        elif per_second:
            lines.append("  per second: this model has no per-frame output")
    return "".join(line + "\n" for line in lines)

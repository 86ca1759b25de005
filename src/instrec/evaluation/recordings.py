"""Scores of a tagger on labelled real recordings with partial labels, by group.

A ``labels.csv`` row names the instruments that sound in a file (``openmic_present``) and,
where its source says so, those known absent (``openmic_absent``); every other instrument
is **unknown** for that file and is masked out of every score, as OpenMIC's missing labels
are. Given (N, C) clip probabilities and present flags from a tagger, :func:`score_recordings`
returns, over the files given:

* ``top1``: the share of files (with at least one present instrument) whose most probable
  *known* instrument sounds in them (unknown instruments cannot win the top rank);
* ``mean_ap``: the mean over instruments of their average precision across the files where
  the instrument is known; an instrument counts when it is present in at least one of them
  and absent in at least one (otherwise its AP says nothing about the ranking);
* ``recall``: the share of present (file, instrument) pairs tagged present;
* ``added_per_file``: documented-absent instruments tagged present, per file;
* per instrument: files present / absent, AP, precision, recall, F1 of the flags (known pairs).

:func:`recording_group` sorts a file into ``solos``, ``notes`` (single notes and short
sample-library phrases) or ``mixtures`` (see there); the groups are scored separately.
"""
from __future__ import annotations

import csv
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from instrec._io import InstrecError
from instrec.evaluation.metrics import _prf, average_precision

#: Folders whose labels are complete although their rows list no absent instrument: the
#: realaudio-dev README says their other classes are absent (single-instrument datasets;
#: Sequence_1 strings together solos of Medley-solos-DB's eight instruments only).
COMPLETE_FOLDERS = ("medley_solos_db/", "medley_solos_db_sequences/", "mirdata/")
#: Folders of sample-library material: single notes and short phrases of one instrument.
NOTE_FOLDERS = ("mirdata/tinysol/", "mirdata/egfxset/", "philharmonia_oramics/")
GROUPS = ("solos", "notes", "mixtures")


@dataclass(frozen=True)
class Recordings:
    """Labelled recordings: ``files``; (N, C) bool ``present`` and ``known`` (present or
    documented absent); per file its ``group`` and ``source`` (top folder: the unit of
    leave-one-source-out choices)."""

    files: list[Path]
    present: np.ndarray
    known: np.ndarray
    groups: list[str]
    sources: list[str]

    def subset(self, keep: np.ndarray) -> "Recordings":
        """The files where (N,) bool ``keep`` is true."""
        idx = np.flatnonzero(keep)
        return Recordings([self.files[i] for i in idx], self.present[idx], self.known[idx],
                          [self.groups[i] for i in idx], [self.sources[i] for i in idx])


def recording_group(rel_path: str, n_present: int, complete: bool, notes: str = "") -> str:
    """The group of a file: ``notes`` for one instrument in the sample-library folders
    (:data:`NOTE_FOLDERS`: their percussion rows leave a neighbour class such as drums/cymbals
    unknown) or in a file whose notes say "single note"; ``solos`` for one instrument with every
    other known absent; ``mixtures`` otherwise (several instruments, or labels that are not
    complete: an accompaniment stem, a song of which only the voice is documented)."""
    if n_present == 1 and (rel_path.startswith(NOTE_FOLDERS) or "single note" in notes.lower()):
        return "notes"
    if n_present == 1 and complete:
        return "solos"
    return "mixtures"


def _names(cell: str | None, classes: Sequence[str], where: str) -> list[str]:
    names = [n.strip() for n in (cell or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise InstrecError(f"{where}: unknown instrument {unknown}")
    return names


def read_recordings(path: str | Path, classes: Sequence[str]) -> Recordings:
    """Parse a ``labels.csv`` (columns ``path`` relative to the CSV's folder, ``openmic_present``,
    optional ``openmic_absent`` and ``notes``); raises InstrecError naming the file and line."""
    path = Path(path)
    files, present, known, groups, sources = [], [], [], [], []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"path", "openmic_present"} <= set(reader.fieldnames):
                raise InstrecError(f"{path}: needs the columns path and openmic_present")
            for line, row in enumerate(reader, start=2):
                where = f"{path}: line {line}"
                pos = _names(row["openmic_present"], classes, where)
                neg = _names(row.get("openmic_absent"), classes, where)
                if set(pos) & set(neg):
                    raise InstrecError(f"{where}: present and absent at once: {sorted(set(pos) & set(neg))}")
                rel = row["path"].strip()
                complete = rel.startswith(COMPLETE_FOLDERS) or len(pos) + len(neg) == len(classes)
                if not pos and not neg:
                    raise InstrecError(f"{where}: no instrument labelled")
                files.append(path.parent / rel)
                present.append([c in pos for c in classes])
                known.append([complete or c in pos or c in neg for c in classes])
                groups.append(recording_group(rel, len(pos), complete, row.get("notes") or ""))
                sources.append(rel.split("/")[0])
    except FileNotFoundError:
        raise InstrecError(f"{path}: labels file not found") from None
    shape = (len(files), len(classes))
    return Recordings(files, np.array(present, bool).reshape(shape), np.array(known, bool).reshape(shape),
                      groups, sources)


def read_recording_labels(path: str | Path, classes: Sequence[str]) -> tuple[list[Path], np.ndarray]:
    """Files and (N, C) bool present flags of a ``labels.csv`` (see :func:`read_recordings`)."""
    rec = read_recordings(path, classes)
    return rec.files, rec.present


def score_recordings(truth: np.ndarray, probs: np.ndarray, present: np.ndarray, classes: Sequence[str],
                     known: np.ndarray | None = None) -> "OrderedDict[str, Any]":
    """Scores of (N, C) ``probs`` and bool tags ``present`` against bool ``truth``, counting only
    the (file, class) pairs where (N, C) bool ``known`` is true (all when None); see the module
    docstring. ``false_positives_per_file`` is kept as an alias of ``added_per_file``."""
    truth, present = np.asarray(truth, bool), np.asarray(present, bool)
    probs = np.asarray(probs, np.float64)
    known = np.ones_like(truth) if known is None else np.asarray(known, bool)
    if not truth.shape == probs.shape == present.shape == known.shape or truth.ndim != 2 \
            or truth.shape[1] != len(classes):
        raise ValueError(f"truth, probs, present and known must all be (N, {len(classes)}); got "
                         f"{truth.shape}, {probs.shape}, {present.shape}, {known.shape}")
    truth = truth & known
    absent = known & ~truth
    n = len(truth)
    # NaN (an instrument the run never learned) and unknown instruments never take the top rank.
    ranked = np.where(known, np.nan_to_num(probs, nan=-np.inf), -np.inf)
    has_pos = truth.any(axis=1)
    top = ranked.argmax(axis=1) if n else np.zeros(0, int)
    rows = []
    for c, name in enumerate(classes):
        k = known[:, c]
        pos, neg = int(truth[:, c].sum()), int(absent[:, c].sum())
        if pos == 0:
            continue
        tp = float((present[:, c] & truth[:, c]).sum())
        fp = float((present[:, c] & absent[:, c]).sum())
        precision, recall, f1 = _prf(tp, fp, float(pos) - tp)
        ap = average_precision(truth[k, c], probs[k, c]) if neg else float("nan")
        rows.append(OrderedDict(instrument=name, present_files=pos, absent_files=neg, ap=ap,
                                precision=precision, recall=recall, f1=f1))
    aps = [r["ap"] for r in rows if not np.isnan(r["ap"])]
    added = float((present & absent).sum() / n) if n else float("nan")
    return OrderedDict(
        n_files=n,
        top1=float(truth[np.arange(n), top][has_pos].mean()) if has_pos.any() else float("nan"),
        mean_ap=float(np.mean(aps)) if aps else float("nan"),
        recall=float((present & truth).sum() / truth.sum()) if truth.any() else float("nan"),
        added_per_file=added,
        false_positives_per_file=added,
        per_class=rows,
    )


def score_groups(rec: Recordings, probs: np.ndarray, present: np.ndarray,
                 classes: Sequence[str]) -> "OrderedDict[str, OrderedDict[str, Any]]":
    """:func:`score_recordings` per group of ``rec`` (:data:`GROUPS`) and over ``all`` files."""
    out: OrderedDict[str, OrderedDict[str, Any]] = OrderedDict()
    groups = np.array(rec.groups)
    for g in (*GROUPS, "all"):
        keep = np.ones(len(groups), bool) if g == "all" else groups == g
        if keep.any():
            out[g] = score_recordings(rec.present[keep], np.asarray(probs)[keep], np.asarray(present)[keep],
                                      classes, rec.known[keep])
    return out


def choice_score(rec: Recordings, probs: np.ndarray, present: np.ndarray, classes: Sequence[str]) -> float:
    """What a choice maximises on the training sources: the mean over the groups there of
    the group's masked mean AP, plus the mixtures' recall minus half their wrongly added
    instruments per file (the issue's two mixture targets) where mixtures are present."""
    s = score_groups(rec, probs, present, classes)
    parts = [s[g]["mean_ap"] for g in GROUPS if g in s and not np.isnan(s[g]["mean_ap"])]
    if "mixtures" in s:
        parts.append(s["mixtures"]["recall"] - 0.5 * s["mixtures"]["added_per_file"])
    return float(np.mean(parts)) if parts else float("nan")


def leave_one_source_out(rec: Recordings, outputs: dict[str, tuple[np.ndarray, np.ndarray]],
                         classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """For each source, the system of ``outputs`` with the best :func:`choice_score` on the
    other sources; returns the held-out ``(probs, present)`` assembled from those choices and
    one row per source (``source``, ``files``, ``chosen``, the training score of each system)."""
    names = list(outputs)
    sources = np.array(rec.sources)
    probs = np.zeros_like(outputs[names[0]][0])
    present = np.zeros_like(outputs[names[0]][1])
    rows = []
    for src in dict.fromkeys(rec.sources):
        held = sources == src
        train = rec.subset(~held)
        scores = {n: choice_score(train, outputs[n][0][~held], outputs[n][1][~held], classes) for n in names}
        best = max(names, key=lambda n: (np.nan_to_num(scores[n], nan=-np.inf), -names.index(n)))  # ties: first
        probs[held], present[held] = outputs[best][0][held], outputs[best][1][held]
        rows.append({"source": src, "files": int(held.sum()), "chosen": best,
                     **{f"score[{n}]": scores[n] for n in names}})
    return probs, present, rows

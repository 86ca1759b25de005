"""Scores of a tagger on labelled recordings, as the real-music check reads them.

A labelled recording lists the instruments that sound in it (``present``); for solo
recordings every other instrument is known absent. Given per-file clip probabilities
(N, C) and present flags (N, C) from a tagger:

* ``top1``: the share of files whose most probable instrument sounds in them;
* ``mean_ap``: the mean over the instruments that sound in at least one file of the
  average precision of that instrument's probabilities across files;
* ``false_positives_per_file``: instruments tagged present that do not sound, per file;
* ``recall``: the share of sounding (file, instrument) pairs tagged present;
* per instrument: support, AP, precision, recall and F1 of the present flags.
"""
from __future__ import annotations

import csv
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from instrec._io import InstrecError
from instrec.evaluation.metrics import _prf, average_precision


def read_recording_labels(path: str | Path, classes: Sequence[str]) -> tuple[list[Path], np.ndarray]:
    """Files and (N, C) bool truth of a ``labels.csv`` with columns ``path`` (relative to the
    CSV's folder) and ``openmic_present`` (comma-separated class names)."""
    path = Path(path)
    files, truth = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"path", "openmic_present"} <= set(reader.fieldnames):
            raise InstrecError(f"{path}: needs the columns path and openmic_present")
        for line, row in enumerate(reader, start=2):
            names = [n.strip() for n in row["openmic_present"].split(",") if n.strip()]
            unknown = [n for n in names if n not in classes]
            if unknown or not names:
                raise InstrecError(f"{path}: line {line}: no instrument or unknown instrument {unknown}")
            files.append(path.parent / row["path"])
            truth.append([c in names for c in classes])
    return files, np.array(truth, dtype=bool).reshape(len(files), len(classes))


def score_recordings(truth: np.ndarray, probs: np.ndarray, present: np.ndarray,
                     classes: Sequence[str]) -> "OrderedDict[str, Any]":
    """Scores of (N, C) ``probs`` and bool ``present`` against bool ``truth`` (see the module docstring)."""
    truth, present = np.asarray(truth, bool), np.asarray(present, bool)
    probs = np.asarray(probs, np.float64)
    if not truth.shape == probs.shape == present.shape or truth.ndim != 2 or truth.shape[1] != len(classes):
        raise ValueError(f"truth, probs and present must all be (N, {len(classes)}); got "
                         f"{truth.shape}, {probs.shape}, {present.shape}")
    n = len(truth)
    top = np.nan_to_num(probs, nan=-np.inf).argmax(axis=1)  # NaN: an instrument the run never learned
    rows = []
    for c, name in enumerate(classes):
        if not truth[:, c].any():
            continue
        tp = float((present[:, c] & truth[:, c]).sum())
        fp = float((present[:, c] & ~truth[:, c]).sum())
        fn = float((~present[:, c] & truth[:, c]).sum())
        precision, recall, f1 = _prf(tp, fp, fn)
        rows.append(OrderedDict(instrument=name, support=int(truth[:, c].sum()),
                                ap=average_precision(truth[:, c], probs[:, c]),
                                precision=precision, recall=recall, f1=f1))
    return OrderedDict(
        n_files=n,
        top1=float(truth[np.arange(n), top].mean()) if n else float("nan"),
        mean_ap=float(np.mean([r["ap"] for r in rows])) if rows else float("nan"),
        false_positives_per_file=float((present & ~truth).sum() / n) if n else float("nan"),
        recall=float((present & truth).sum() / max(1, truth.sum())),
        per_class=rows,
    )

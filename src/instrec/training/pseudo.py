"""Pseudo-labels for the unknown entries of the partial annotation, from a teacher run.

With about 2 of 20 instruments labelled per clip, nine tenths of the (clip, instrument)
entries never reach the loss. A finished run (the *teacher*, e.g. the same configuration
trained on the same partition with the same seed) scores every training clip, and an unknown
entry becomes a positive (negative) where the teacher's probability is at least (at most) a
per-instrument threshold. A fixed probability threshold does not work: focal loss keeps
probabilities far from 0 and 1 (on the corpus not one unknown entry passed 0.9 or 0.1), so the
thresholds are *calibrated* on the teacher's own validation clips: the lowest probability above
which the teacher's positives there are right with at least the required ``precision``, and
the highest below which its negatives are (with at least ``MIN_SUPPORT`` validation entries
behind each). Labelled entries keep their annotation; the validation clips keep only their real
labels, so model selection never judges on pseudo-labels, and the test partition is seen by
neither run.

The pseudo-labels are a deterministic function of the teacher's weights (evaluation mode, no
dropout), so a resumed run recomputes the same ones; the teacher's weight checksum is
recorded in ``config.json`` and a resume with a changed teacher is refused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from instrec._io import InstrecError
from instrec.data.layout import read_frontend
from instrec.data.openmic import OpenMICData
from instrec.models.inference import run_model
from instrec.run import load_model, model_sha256, read_validation_keys

#: Validation entries a calibrated threshold must rest on, per instrument and side.
MIN_SUPPORT = 5


def calibrated_thresholds(y_true: np.ndarray, mask: np.ndarray, probs: np.ndarray, precision: float,
                          min_support: int = MIN_SUPPORT) -> tuple[np.ndarray, np.ndarray]:
    """(C,) positive and negative thresholds from labelled validation entries.

    y_true (N, C) relevance (positive: >= 0.5), mask (N, C) bool, probs (N, C). For each class,
    the positive threshold is the k-th highest probability for the largest k >= ``min_support``
    whose k highest entries are positives with a share >= ``precision`` (``inf`` if none); the
    negative threshold likewise from the lowest probabilities (``-inf`` if none). A class whose
    two thresholds would overlap gets neither."""
    if not 0.5 < precision <= 1:
        raise ValueError(f"pseudo-label precision must be in (0.5, 1], got {precision}")
    n_classes = probs.shape[1]
    pos_thr, neg_thr = np.full(n_classes, np.inf), np.full(n_classes, -np.inf)
    for c in range(n_classes):
        labelled = np.asarray(mask[:, c], dtype=bool)
        p, y = probs[labelled, c].astype(np.float64), y_true[labelled, c] >= 0.5
        for side, order, right in ((0, np.argsort(-p, kind="stable"), y), (1, np.argsort(p, kind="stable"), ~y)):
            share = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
            ok = np.nonzero((share >= precision) & (np.arange(1, len(order) + 1) >= min_support))[0]
            if len(ok):
                (pos_thr if side == 0 else neg_thr)[c] = p[order[ok[-1]]]
    overlap = pos_thr <= neg_thr
    pos_thr[overlap], neg_thr[overlap] = np.inf, -np.inf
    return pos_thr, neg_thr


def pseudo_labels(targets: np.ndarray, mask: np.ndarray, probs: np.ndarray, pos_threshold,
                  neg_threshold) -> tuple[np.ndarray, np.ndarray]:
    """Targets (N, C) float32 and mask (N, C) bool with confident unknown entries filled in.

    targets (N, C) in [0, 1] and mask (N, C) bool: the annotation; probs (N, C): the teacher's
    probabilities; thresholds: scalars or (C,). An unknown entry becomes 1 where ``probs >=
    pos_threshold``, else 0 where ``probs <= neg_threshold``. Labelled entries are unchanged."""
    if targets.shape != mask.shape or targets.shape != probs.shape:
        raise ValueError(f"targets, mask and probs must have one shape, got {targets.shape}, {mask.shape}, "
                         f"{probs.shape}")
    mask = np.asarray(mask, dtype=bool)
    unknown = ~mask
    pos = unknown & (probs >= pos_threshold)
    neg = unknown & ~pos & (probs <= neg_threshold)
    new_targets = np.where(pos, 1.0, np.where(neg, 0.0, targets)).astype(np.float32)
    return new_targets, mask | pos | neg


def teacher_pseudo_labels(teacher: str | Path, data: OpenMICData, train_rows: np.ndarray, data_dir: str | Path,
                          precision: float) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Targets, mask (N, C) of the training clips ``data.subset(train_rows)`` with the teacher's
    pseudo-labels, and the record for ``config.json`` (teacher checksum, thresholds, entries
    added). ``data``: the whole training partition (it holds the teacher's validation clips).
    Raises InstrecError when the teacher is not a finished run over the same classes and front
    end as ``data_dir``."""
    model, config = load_model(teacher)
    sha = model_sha256(teacher)
    if tuple(config["classes"]) != tuple(data.classes):
        raise InstrecError(f"{teacher}: the teacher was trained on other classes than {data_dir}")
    if config.get("n_features") != data.X.shape[2] or config.get("frontend") != read_frontend(data_dir):
        raise InstrecError(f"{teacher}: the teacher was trained on another front end than {data_dir}")
    val_keys = set(read_validation_keys(Path(teacher)))
    val = data.subset([i for i, k in enumerate(data.sample_key) if k in val_keys])
    if len(val) != len(val_keys):
        raise InstrecError(f"{teacher}: its validation clips are not all in the training partition of {data_dir}")
    pos_thr, neg_thr = calibrated_thresholds(val.Y_true, val.Y_mask, run_model(model, val.X).clip, precision)
    train_set = data.subset(train_rows)
    probs = run_model(model, train_set.X).clip
    targets, mask = pseudo_labels(train_set.targets, train_set.Y_mask, probs, pos_thr, neg_thr)
    added = mask & ~train_set.Y_mask
    record = {"teacher_model_sha256": sha, "precision": precision,
              "positive_thresholds": [None if not np.isfinite(t) else float(t) for t in pos_thr],
              "negative_thresholds": [None if not np.isfinite(t) else float(t) for t in neg_thr],
              "added_positive": int((added & (targets >= 0.5)).sum()),
              "added_negative": int((added & (targets < 0.5)).sum()),
              "labelled_before": int(train_set.Y_mask.sum()), "labelled_after": int(mask.sum())}
    return targets, mask, record

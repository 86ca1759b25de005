"""Pseudo-labels for the unknown entries of the partial annotation, from a teacher run.

With about 2 of 20 instruments labelled per clip, nine tenths of the (clip, instrument)
entries never reach the loss. A finished run (the *teacher*, e.g. the paper's configuration
trained on the same partition with the same seed) scores every training clip; an unknown
entry becomes a positive where the teacher's probability is at least ``threshold`` and a
negative where it is at most ``1 - threshold``, and stays unknown otherwise. Labelled entries
keep their annotation. The validation clips keep only their real labels, so model selection
is not judged on pseudo-labels, and the test partition is never seen by either run.

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
from instrec.run import load_model, model_sha256


def pseudo_labels(targets: np.ndarray, mask: np.ndarray, probs: np.ndarray,
                  threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Targets (N, C) float32 and mask (N, C) bool with confident unknown entries filled in.

    targets (N, C) in [0, 1] and mask (N, C) bool: the annotation; probs (N, C): the teacher's
    probabilities; an unknown entry becomes 1 where ``probs >= threshold``, 0 where ``probs <=
    1 - threshold``. Labelled entries are unchanged."""
    if not 0.5 < threshold <= 1:
        raise ValueError(f"pseudo-label threshold must be in (0.5, 1], got {threshold}")
    if targets.shape != mask.shape or targets.shape != probs.shape:
        raise ValueError(f"targets, mask and probs must have one shape, got {targets.shape}, {mask.shape}, "
                         f"{probs.shape}")
    mask = np.asarray(mask, dtype=bool)
    unknown = ~mask
    pos = unknown & (probs >= threshold)
    neg = unknown & (probs <= 1.0 - threshold)
    new_targets = np.where(pos, 1.0, np.where(neg, 0.0, targets)).astype(np.float32)
    return new_targets, mask | pos | neg


def teacher_pseudo_labels(teacher: str | Path, train_set: OpenMICData, data_dir: str | Path,
                          threshold: float) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Targets, mask (N, C) of ``train_set`` with the teacher's pseudo-labels, and the record
    for ``config.json`` (teacher checksum, entries added). Raises InstrecError when the
    teacher is not a finished run over the same classes and front end as ``data_dir``."""
    model, config = load_model(teacher)
    sha = model_sha256(teacher)
    if tuple(config["classes"]) != tuple(train_set.classes):
        raise InstrecError(f"{teacher}: the teacher was trained on other classes than {data_dir}")
    if config.get("n_features") != train_set.X.shape[2] or config.get("frontend") != read_frontend(data_dir):
        raise InstrecError(f"{teacher}: the teacher was trained on another front end than {data_dir}")
    probs = run_model(model, train_set.X).clip
    targets, mask = pseudo_labels(train_set.targets, train_set.Y_mask, probs, threshold)
    added = mask & ~train_set.Y_mask
    record = {"teacher_model_sha256": sha, "threshold": threshold,
              "added_positive": int((added & (targets >= 0.5)).sum()),
              "added_negative": int((added & (targets < 0.5)).sum()),
              "labelled_before": int(train_set.Y_mask.sum()), "labelled_after": int(mask.sum())}
    return targets, mask, record

"""What a tag's "present" means: the threshold policy, and which instruments a run learned.

Threshold policy (``predict(..., threshold=...)``, ``instrec predict --threshold``):

* ``"tuned"`` (the default): one threshold per instrument, tuned on the run's own
  validation clips for the best F1 of that instrument (``thresholds`` in the run's
  ``config.json``). It is the default because a run trained on a few labels per clip
  is rarely calibrated: its probabilities for a rare instrument stay low, and one
  threshold for all instruments under-tags the rare ones. A run without tuned
  thresholds falls back to 0.5 and says so.
* ``"0.5"`` or any number ``t`` in [0, 1): the same threshold for every instrument.

An instrument is present when its probability is strictly above its threshold, and
only if the run learned it. A run *learned* an instrument when its training clips held
at least one labelled positive of it (``untrained_classes`` in ``config.json``, written
at training time); the others get no probability at all (NaN), never a number that
looks like one. Runs written before that key existed are checked against the training
partition of the dataset they name, where it can still be read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from instrec._io import InstrecError
from instrec.data.layout import NPZ_FILE, partition_path
from instrec.data.openmic import read_npz_safely, read_partition

#: The named policies; any number in [0, 1) is a policy too.
TUNED = "tuned"
DEFAULT_THRESHOLD = TUNED


@dataclass(frozen=True)
class ThresholdPolicy:
    """A resolved policy: its name as the user gave it, (C,) thresholds, and a sentence for outputs."""

    name: str
    values: np.ndarray
    description: str


def parse_threshold(value: str | float) -> str | float:
    """``"tuned"`` or a number in [0, 1) (a float or its text, e.g. ``"0.5"``); a clear error otherwise."""
    if isinstance(value, str) and value.strip().lower() == TUNED:
        return TUNED
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InstrecError(f"threshold {value!r}: give 'tuned', '0.5' or a number between 0 and 1") from None
    if not 0.0 <= number < 1.0:
        raise InstrecError(f"threshold {value!r}: must be at least 0 and below 1 (a probability must exceed it)")
    return number


def resolve_threshold(threshold: str | float, config: dict[str, Any]) -> ThresholdPolicy:
    """The (C,) thresholds of ``threshold`` for a run's ``config`` (see the module docstring)."""
    policy = parse_threshold(threshold)
    n = len(config["classes"])
    if policy == TUNED:
        tuned = config.get("thresholds")
        if tuned is None:
            return ThresholdPolicy(TUNED, np.full(n, 0.5), "tuned requested, but the run has no tuned thresholds: "
                                   "0.5 for every instrument")
        return ThresholdPolicy(TUNED, np.asarray(tuned, dtype=np.float64),
                               "tuned: one threshold per instrument, chosen for its best F1 on the run's "
                               "validation clips")
    return ThresholdPolicy(f"{policy:g}", np.full(n, float(policy)), f"{policy:g} for every instrument")


def learned_classes(config: dict[str, Any]) -> tuple[np.ndarray, str | None]:
    """(C,) bool: the instruments the run learned, and a note when that had to be inferred."""
    classes = list(config["classes"])
    if "untrained_classes" in config:
        unknown = set(config["untrained_classes"])
        return np.array([c not in unknown for c in classes]), None
    data = config.get("train", {}).get("data")
    try:
        arrays = read_npz_safely(Path(data) / NPZ_FILE, ("Y_true", "Y_mask", "sample_key"))
        keys = set(read_partition(partition_path(data, "train", config["train"].get("split", "split01"))))
    except (InstrecError, OSError, TypeError, KeyError):
        return np.ones(len(classes), bool), ("the run does not record which instruments its training data "
                                             "labelled, and its dataset cannot be read: every instrument is scored")
    rows = np.array([str(k) in keys for k in arrays["sample_key"]])
    positive = ((arrays["Y_true"][rows] >= 0.5) & arrays["Y_mask"][rows].astype(bool)).any(axis=0)
    if positive.shape != (len(classes),):
        return np.ones(len(classes), bool), f"{data}: its classes differ from the run's; every instrument is scored"
    return positive, f"instruments learned: read from the training partition of {data} (the run predates the record)"

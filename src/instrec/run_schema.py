"""The schema of a run's ``config.json``, checked whenever a run folder is read (see
:mod:`instrec.run`, which owns the run-directory files). Import-light: no torch."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from instrec._io import InstrecError
from instrec.models.registry import model_spec


#: Largest ``n_frames`` (training clip length, 0.96-s frames: 2.7 hours) and ``n_features``
#: a run may record: the tagger allocates a window of that many frames per file.
MAX_FRAMES = 10_000
MAX_FEATURES = 65_536
#: Largest epoch count a run or its resume state may record.
MAX_EPOCHS = 1_000_000


def _positive_int(value: Any, limit: int) -> bool:
    return type(value) is int and 1 <= value <= limit


def check_run_config(config: Any, path: Path) -> None:
    """The schema of a run's ``config.json``: each failure names ``path`` and the field."""
    def bad(field: str, problem: str) -> InstrecError:
        return InstrecError(f"{path}: field {field!r} {problem}")

    if not isinstance(config, dict):
        raise InstrecError(f"{path}: must be a JSON object")
    for key in ("model", "model_config", "classes", "n_frames"):
        if key not in config:
            raise InstrecError(f"{path}: missing key {key!r}")
    if not isinstance(config["model"], str):
        raise bad("model", "must be a model name")
    try:
        model_spec(config["model"])
    except InstrecError as exc:
        raise bad("model", f"is wrong: {exc}") from None
    if not isinstance(config["model_config"], dict):
        raise bad("model_config", "must be an object of constructor settings")
    classes = config["classes"]
    if (not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c for c in classes)
            or len(set(classes)) != len(classes)):
        raise bad("classes", "must be a non-empty list of distinct instrument names")
    for key, limit in (("n_frames", MAX_FRAMES), ("n_features", MAX_FEATURES)):
        if key in config and not _positive_int(config[key], limit):
            raise bad(key, f"must be an integer >= 1 (at most {limit}), got {str(config[key])[:40]}")
    for key in ("epochs_run", "best_epoch"):
        if key in config and not (type(config[key]) is int and -1 <= config[key] <= MAX_EPOCHS):
            raise bad(key, f"must be an integer in [-1, {MAX_EPOCHS}]")
    prior = config.get("tag_prior")
    if prior is not None and not (isinstance(prior, dict) and isinstance(prior.get("rule"), str)):
        raise bad("tag_prior", "must be null or an object with a 'rule' (e.g. {\"rule\": \"noisy-or\"})")
    if "thresholds" in config:
        t = config["thresholds"]
        if (not isinstance(t, list) or len(t) != len(classes)
                or not all(type(v) in (int, float) and math.isfinite(v) and 0 <= v <= 1 for v in t)):
            raise bad("thresholds", f"must be a list of {len(classes)} numbers in [0, 1] (one per class)")
    untrained = config.get("untrained_classes", [])
    if not isinstance(untrained, list) or not set(untrained) <= set(classes):
        raise bad("untrained_classes", "must list some of the run's classes")
    if not isinstance(config.get("device", "cpu"), str):  # runs from before --device have none: the CPU
        raise bad("device", "must be a device name such as 'cpu' or 'cuda'")
    frontend = config.get("frontend", {})
    if not isinstance(frontend, dict) or not isinstance(frontend.get("name", ""), str):
        raise bad("frontend", "must be an object with a front-end 'name'")
    train = config.get("train", {})
    if not isinstance(train, dict) or not all(isinstance(train.get(k, ""), str) for k in ("data", "split")):
        raise bad("train", "must be an object of training settings ('data' and 'split' as text)")
    model_config = config["model_config"]
    for key, expected in (("n_classes", len(classes)), ("n_features", config.get("n_features"))):
        if key in model_config and expected is not None and model_config[key] != expected:
            raise bad(f"model_config.{key}", f"is {model_config[key]!r} but the run has {expected}")

"""A run directory: every file name in it, and the readers and writers of those files.

Weights are safetensors, everything else JSON or CSV; nothing is ever unpickled.

- ``config.json``: the resolved training config, the model name and constructor kwargs,
  class names, front end, seed, threads and package versions, then the results
  (thresholds, best epoch) and ``finished`` (a UTC time stamp, written last) once the run
  has finished: a run without it was interrupted, and is refused by :func:`load_model`
  unless ``allow_unfinished``;
- ``model.safetensors``: the best weights (neural models) or the exported trees (``rf``);
- ``last.safetensors`` + ``last.json``: the state needed to resume training (weights,
  Adam moments, RNG states; epoch counters and history; read and written by
  :mod:`instrec.resume`);
- ``train_log.csv``: one row per epoch; ``validation-keys.csv``: the held-out clips;
- ``metrics.json``, ``per_class.csv``, ``predictions.npz``: written by ``instrec evaluate``
  on the test split; other splits add theirs to the name (``metrics-validation.json``...);
  with ``--localization`` also ``localization/metrics.json`` and ``localization/per_class.csv``
  (segment-level scores against strong labels, per instrument).

Everything read back is checked (:func:`check_run_config`) so a damaged or edited file is a
one-line error naming the file and the field.
"""
from __future__ import annotations

import csv
import hashlib
import io
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save

from instrec._io import (
    InstrecError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from instrec._jsonread import Int, ListOf, Nullable, Num, Obj, read_json
from instrec.integrity import check_integrity, write_integrity
from instrec.models import model_from_tensors, model_spec, model_tensors
from instrec.run_schema import MAX_EPOCHS, check_run_config

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
RESUME_WEIGHTS = "last.safetensors"
RESUME_STATE = "last.json"
LOG_FILE = "train_log.csv"
VALIDATION_KEYS = "validation-keys.csv"
METRICS_FILE = "metrics.json"
PER_CLASS_FILE = "per_class.csv"
PREDICTIONS_FILE = "predictions.npz"
#: ``instrec evaluate --localization``'s segment-level outputs, inside the evaluation's folder:
#: the scores, and one row per method and instrument (a folder of their own, so the clip-level
#: ``per_class.csv`` beside them is never mistaken for the per-instrument localisation table).
LOCALIZATION_METRICS_FILE = "localization/metrics.json"
LOCALIZATION_PER_CLASS_FILE = "localization/per_class.csv"
#: The integrity record of a finished run (:mod:`instrec.integrity`): the sha256 of the files in
#: :data:`CHECKED_FILES`, written with the ``finished`` stamp and checked by :func:`load_model`.
INTEGRITY_FILE = "integrity.json"
CHECKED_FILES = (CONFIG_FILE, MODEL_FILE)
#: Files a training run writes (``--overwrite`` removes them first).
TRAINING_FILES = (CONFIG_FILE, MODEL_FILE, RESUME_WEIGHTS, RESUME_STATE, LOG_FILE, INTEGRITY_FILE)
#: Settings a resumed run may change: the others must match the run it continues.
RESUMABLE_CHANGES = ("epochs", "out", "compile", "device")
#: The ``config.json`` key written last by a finished run.
FINISHED_KEY = "finished"
#: The schema of ``last.json`` (:func:`instrec.resume.read_resume_state`): the epoch counters are bounded, so a
#: damaged record cannot ask for a billion epochs of work or index past the history.
RESUME_SCHEMA = Obj({"epoch": Int(0, MAX_EPOCHS), "best_epoch": Int(-1, MAX_EPOCHS), "best_f1": Nullable(Num()),
                     "history": ListOf(dict, 0, MAX_EPOCHS), "param_groups": ListOf(dict, 1),
                     "mask_rngs": Nullable(list)}, ("epoch", "best_epoch", "best_f1", "history", "param_groups"))

#: The splits ``instrec evaluate`` scores; ``test`` keeps the plain file names.
EVAL_SPLITS = ("test", "train", "validation")


def eval_files(split: str) -> tuple[str, str, str]:
    """(metrics, per-class, predictions) file names of an evaluation on ``split``."""
    if split not in EVAL_SPLITS:
        raise InstrecError(f"unknown split {split!r}; choose {', '.join(EVAL_SPLITS)}")
    if split == "test":
        return METRICS_FILE, PER_CLASS_FILE, PREDICTIONS_FILE
    return tuple(f"{Path(n).stem}-{split}{Path(n).suffix}" for n in (METRICS_FILE, PER_CLASS_FILE, PREDICTIONS_FILE))


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """Parse and check ``run_dir/config.json``; a clear error if it is missing, not a run
    directory, or damaged (see :func:`check_run_config`)."""
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise InstrecError(f"{run_dir}: run directory not found")
    if not path.is_file():
        raise InstrecError(f"{path}: not found; is {run_dir} a run directory written by 'instrec train'?")
    config = read_json(path)
    check_run_config(config, path)
    return config


def run_finished(config: dict[str, Any]) -> bool:
    """Whether a run's config says it finished: the ``finished`` marker (or, for runs
    written before it existed, the results only the last step writes)."""
    return FINISHED_KEY in config or ("thresholds" in config and "epochs_run" in config)


def mark_finished(config: dict[str, Any]) -> None:
    """Add the ``finished`` time stamp (UTC); it must be the last key written."""
    config.pop(FINISHED_KEY, None)
    config[FINISHED_KEY] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_config(run_dir: str | Path, config: dict[str, Any]) -> None:
    """Write ``config.json``; with the ``finished`` stamp also the run's integrity record
    (an older record is removed first: it no longer matches)."""
    (Path(run_dir) / INTEGRITY_FILE).unlink(missing_ok=True)
    atomic_write_json(Path(run_dir) / CONFIG_FILE, config)
    if FINISHED_KEY in config:
        write_run_integrity(run_dir)


def write_run_integrity(run_dir: str | Path) -> Path:
    """Record the sha256 of a finished run's :data:`CHECKED_FILES` in ``integrity.json``
    (also what the default-model export calls once its files are in place)."""
    run_dir = Path(run_dir)
    return write_integrity(run_dir / INTEGRITY_FILE, [run_dir / name for name in CHECKED_FILES])


def check_run_integrity(run_dir: str | Path, required: bool = False, repair: str | None = None) -> bool:
    """Check a finished run's files against its integrity record (see :mod:`instrec.integrity`).
    A run finished by an instrec without records is used with a warning unless ``required``."""
    repair = repair or ("train the run again ('instrec train ... --overwrite') or restore its folder from a copy; "
                        "a config.json edited by hand is refused too")
    return check_integrity(Path(run_dir) / INTEGRITY_FILE, CHECKED_FILES, repair, required,
                           " (finished by an older instrec, which wrote none)")


def save_tensors(path: str | Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Save a flat dict of torch tensors or numpy arrays to safetensors, atomically."""
    flat = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v.detach().contiguous())
            for k, v in tensors.items()}
    atomic_write_bytes(path, save(flat, metadata=metadata))


def load_tensors(path: str | Path) -> dict[str, Any]:
    """Load a safetensors file into torch tensors; a clear error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InstrecError(f"{path}: not found")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise InstrecError(f"{path}: not a readable safetensors file ({exc})") from None


def save_model(run_dir: str | Path, model: Any) -> None:
    """Write the model's weights (torch module or random-forest baseline) to ``model.safetensors``."""
    save_tensors(Path(run_dir) / MODEL_FILE, model_tensors(model))


def load_model(run_dir: str | Path, allow_unfinished: bool = False, require_integrity: bool = False,
               repair: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Rebuild the model of a run directory from its config and weights, in eval mode.

    A run whose training did not finish (killed, a full disk) is refused, or with
    ``allow_unfinished`` used with a warning (its thresholds are then 0.5). A finished run's
    files are checked against its integrity record (:func:`check_run_integrity`; ``repair``
    replaces the sentence that says how to get good files back)."""
    config = read_config(run_dir)
    if run_finished(config):
        check_run_integrity(run_dir, require_integrity, repair)
    if not run_finished(config):
        message = (f"{Path(run_dir) / CONFIG_FILE}: the run did not finish ({_progress(Path(run_dir), config)}); "
                   "resume it with 'instrec train ... --resume'")
        if not allow_unfinished:
            raise InstrecError(message + " or pass --allow-unfinished to use it as it is")
        warnings.warn(message + "; used as it is (allow_unfinished)", stacklevel=2)
    return model_of(run_dir, config), config


def _progress(run_dir: Path, config: dict[str, Any]) -> str:
    """'trained N of M epochs' from the resume state, where readable."""
    try:
        done = read_json(run_dir / RESUME_STATE, RESUME_SCHEMA)["epoch"]
    except (InstrecError, KeyError):
        return "no finished marker"
    return f"trained {done} of {config.get('train', {}).get('epochs', '?')} epochs"


def model_of(run_dir: str | Path, config: dict[str, Any]) -> Any:
    """The model of ``config`` with the weights in ``run_dir/model.safetensors``."""
    path = Path(run_dir) / MODEL_FILE
    model_config = config["model_config"]
    if not model_spec(config["model"]).neural:  # the forest's arrays are checked against the run's counts
        model_config = {**model_config, "n_classes": len(config["classes"]), "n_features": config.get("n_features")}
    return model_from_tensors(config["model"], model_config, load_tensors(path), str(path))


def model_sha256(run_dir: str | Path) -> str:
    """SHA-256 (hex) of the run's ``model.safetensors``; a clear error if it is missing."""
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise InstrecError(f"{path}: not found; has the run in {run_dir} finished?")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_validation_keys(run_dir: Path, keys: Sequence[str]) -> None:
    atomic_write_text(run_dir / VALIDATION_KEYS, "".join(k + "\n" for k in keys))


def read_validation_keys(run_dir: Path) -> list[str]:
    path = run_dir / VALIDATION_KEYS
    if not path.is_file():
        raise InstrecError(f"{path}: not found; the run's validation clips are unknown")
    try:
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    except UnicodeDecodeError:
        raise InstrecError(f"{path}: not UTF-8 text") from None


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a non-empty folder unless resuming or overwriting (which
    removes the previous run's training files first)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise InstrecError(f"{run_dir}: exists and is not a folder; give a folder for the run")
    if resume:
        return
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise InstrecError(f"{run_dir}: output directory is not empty; pass --overwrite to replace it "
                           "or --resume to continue it")
    if overwrite:
        for name in TRAINING_FILES:
            (run_dir / name).unlink(missing_ok=True)


def check_same_run(run_dir: Path, config: dict[str, Any], defaults: dict[str, Any] | None = None) -> None:
    """Resuming is only meaningful with the settings the run started with (epochs may grow).

    ``defaults``: the value of a setting a run recorded before the setting existed (it ran as
    that default)."""
    old = {**(defaults or {}), **read_config(run_dir)["train"]}
    new = dict(config["train"])
    for key in RESUMABLE_CHANGES:
        old.pop(key, None), new.pop(key, None)
    changed = sorted(k for k in new if old.get(k) != new[k])
    if changed:
        raise InstrecError(f"{run_dir / CONFIG_FILE}: cannot resume with different settings ({', '.join(changed)})")


#: Settings that do not make a run's results different (rounding aside) or that are
#: compared by content instead (``data``: see :func:`stale_settings`).
REUSE_IGNORES = ("out", "compile", "threads", "device", "data")


def stale_settings(run_dir: Path, train: dict[str, Any], data_sha256: str,
                   defaults: dict[str, Any] | None = None) -> list[str]:
    """The settings in which the run recorded in ``run_dir`` differs from ``train`` (a
    TrainConfig as a dict) and the dataset content ``data_sha256``; empty when it may be
    reused or resumed. Runs written before the fingerprint existed compare the data path."""
    config = read_config(run_dir)
    old = {**(defaults or {}), **config.get("train", {})}
    changed = sorted(k for k in train if k not in (*REUSE_IGNORES, "epochs") and old.get(k) != train[k])
    if isinstance(old.get("epochs"), int) and old["epochs"] > train["epochs"]:
        changed.append("epochs")  # more epochs resume the run; fewer cannot be had from it
    recorded = config.get("data_sha256")
    if recorded is not None:
        if recorded != data_sha256:
            changed.append("data (its content)")
    elif Path(str(old.get("data", ""))).resolve() != Path(str(train["data"])).resolve():
        changed.append("data")
    return changed


def clear_run(run_dir: Path) -> None:
    """Remove the files of a run (training and every evaluation), keeping anything else."""
    names = {*TRAINING_FILES, VALIDATION_KEYS, *(n for split in EVAL_SPLITS for n in eval_files(split))}
    for name in names:
        (run_dir / name).unlink(missing_ok=True)


def is_finished(run_dir: Path, epochs: int) -> bool:
    """Whether ``run_dir`` holds a complete run of ``epochs`` epochs (thresholds tuned)."""
    if not (run_dir / CONFIG_FILE).is_file():
        return False
    config = read_config(run_dir)
    return run_finished(config) and "thresholds" in config and config.get("epochs_run") == epochs


def write_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """``train_log.csv``: one row per epoch of ``history`` (floats to 6 significant digits)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(run_dir / LOG_FILE, buf.getvalue())

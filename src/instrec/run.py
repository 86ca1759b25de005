"""A run directory: every file name in it, and the readers and writers of those files.

Weights are safetensors, everything else JSON or CSV; nothing is ever unpickled.

- ``config.json``: the resolved training config, the model name and constructor kwargs,
  class names, front end, seed, threads and package versions, then the results
  (thresholds, best epoch) once the run has finished;
- ``model.safetensors``: the best weights (neural models) or the exported trees (``rf``);
- ``last.safetensors`` + ``last.json``: the state needed to resume training (weights,
  Adam moments, RNG states; epoch counters and history);
- ``train_log.csv``: one row per epoch; ``validation-keys.csv``: the held-out clips;
- ``metrics.json``, ``per_class.csv``, ``predictions.npz``: written by ``instrec evaluate``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
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
from instrec.models import model_from_tensors, model_tensors

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
RESUME_WEIGHTS = "last.safetensors"
RESUME_STATE = "last.json"
LOG_FILE = "train_log.csv"
VALIDATION_KEYS = "validation-keys.csv"
METRICS_FILE = "metrics.json"
PER_CLASS_FILE = "per_class.csv"
PREDICTIONS_FILE = "predictions.npz"
#: Files a training run writes (``--overwrite`` removes them first).
TRAINING_FILES = (CONFIG_FILE, MODEL_FILE, RESUME_WEIGHTS, RESUME_STATE, LOG_FILE)
#: Settings a resumed run may change: the others must match the run it continues.
RESUMABLE_CHANGES = ("epochs", "out", "compile")


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """Parse ``run_dir/config.json``; a clear error if it is missing or not a run directory."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise InstrecError(f"{path}: not found; is {run_dir} a run directory written by 'instrec train'?")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InstrecError(f"{path}: not valid JSON ({exc})") from None
    for key in ("model", "model_config", "classes"):
        if key not in config:
            raise InstrecError(f"{path}: missing key {key!r}")
    return config


def write_config(run_dir: str | Path, config: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / CONFIG_FILE, config)


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


def load_model(run_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the model of a run directory from its config and weights, in eval mode."""
    config = read_config(run_dir)
    path = Path(run_dir) / MODEL_FILE
    return model_from_tensors(config["model"], config["model_config"], load_tensors(path), str(path)), config


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
    return path.read_text().split()


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a non-empty folder unless resuming or overwriting (which
    removes the previous run's training files first)."""
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


def is_finished(run_dir: Path, epochs: int) -> bool:
    """Whether ``run_dir`` holds a complete run of ``epochs`` epochs (thresholds tuned)."""
    if not (run_dir / CONFIG_FILE).is_file():
        return False
    config = read_config(run_dir)
    return "thresholds" in config and config.get("epochs_run") == epochs


def save_resume_state(run_dir: Path, model_state: dict[str, Any], opt_state: dict[str, Any], torch_rng,
                      generator_rng, mask_rngs: list[dict[str, Any]], state: dict[str, Any]) -> None:
    """Write ``last.safetensors`` + ``last.json``: weights, Adam state (``optimizer.state_dict()``
    layout), the global torch RNG state (the GRU's dropout), the run generator's state (data
    order) and the model's dropout streams (``mask_rngs``, see :mod:`instrec.models.dropout`)."""
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    for pid, slots in opt_state["state"].items():
        for key, value in slots.items():
            tensors[f"opt.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    tensors["rng.torch"] = torch_rng
    tensors["rng.generator"] = generator_rng
    # Weights first, then the JSON that points at them: a crash in between resumes one epoch early.
    save_tensors(run_dir / RESUME_WEIGHTS, tensors)
    atomic_write_json(run_dir / RESUME_STATE, {**state, "param_groups": opt_state["param_groups"],
                                               "mask_rngs": mask_rngs})


def has_resume_state(run_dir: Path) -> bool:
    return (run_dir / RESUME_STATE).is_file()


def read_resume_state(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Inverse of :func:`save_resume_state`: (state, model state dict, optimizer state dict,
    {"torch": rng state, "generator": rng state, "masks": dropout stream states})."""
    state = json.loads((run_dir / RESUME_STATE).read_text())
    tensors = load_tensors(run_dir / RESUME_WEIGHTS)
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            slots.setdefault(int(pid), {})[name] = value
    opt_state = {"state": slots, "param_groups": state.pop("param_groups")}
    rngs = {"torch": tensors["rng.torch"], "generator": tensors["rng.generator"], "masks": state.pop("mask_rngs", None)}
    if rngs["masks"] is None:
        raise InstrecError(f"{run_dir / RESUME_STATE}: no dropout stream states (written by an older instrec); "
                           "start the run again with --overwrite")
    return state, model_state, opt_state, rngs


def write_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """``train_log.csv``: one row per epoch of ``history`` (floats to 6 significant digits)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(run_dir / LOG_FILE, buf.getvalue())

"""The life of a training run, shared by the solo loop and the lockstep engine.

1. :func:`open_run`: hold out the seeded validation clips, write their keys, and compose
   the ``config.json`` known before training;
2. :func:`new_model`: seed torch and build the run's initial model;
3. :func:`end_epoch` after every epoch: log the epoch, keep the weights of the best
   validation macro F1;
4. :func:`finish_run`: tune per-class thresholds with the best weights and complete
   ``config.json``.

The files themselves are read and written by :mod:`instrec.run`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from instrec._io import InstrecError
from instrec.data.layout import dataset_fingerprint, partition_path, read_frontend
from instrec.data.openmic import OpenMICData, validation_split
from instrec.evaluation.metrics import f1_summary, tune_thresholds
from instrec.models import build_model, model_spec
from instrec.models.inference import run_model
from instrec.run import (
    CONFIG_FILE,
    METRICS_FILE,
    clear_run,
    mark_finished,
    model_of,
    read_config,
    run_finished,
    stale_settings,
    write_config,
    write_validation_keys,
)
from instrec.runinfo import package_versions
from instrec.training.config import TrainConfig, setting_defaults
from instrec.training.losses import loss_function

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def new_state() -> dict[str, Any]:
    """The training record saved with the resume state: epochs done, best F1 and epoch, history."""
    return {"epoch": 0, "best_f1": -1.0, "best_epoch": -1, "history": []}


@dataclass
class Run:
    """One run being trained: its settings, folder, ``config.json`` content, clips and record."""

    cfg: TrainConfig
    run_dir: Path
    config: dict[str, Any]
    train_rows: np.ndarray   # (n_train,) int64 rows of the training partition
    val_set: OpenMICData
    loss_fn: LossFn
    state: dict[str, Any] = field(default_factory=new_state)


def labelled_positive(targets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(C,) bool: instruments with at least one labelled positive among (N, C) targets."""
    return ((targets >= 0.5) & mask).any(axis=0)


def run_config(cfg: TrainConfig, classes, n_frames: int, n_features: int, n_train: int, n_validation: int,
               threads: int, train_positive=None, device: str = "cpu") -> dict[str, Any]:
    """The ``config.json`` content known before training (model_config and results come later).
    ``device``: the resolved device the run trains on (:func:`instrec.device.resolve_device`).

    ``train_positive`` (C,) bool: whether the training clips hold a labelled positive of each
    instrument; the others are recorded as ``untrained_classes`` and never tagged present."""
    untrained = [] if train_positive is None else [c for c, ok in zip(classes, train_positive) if not ok]
    return {
        "model": cfg.model, "train": asdict(cfg), "classes": list(classes),
        "n_frames": int(n_frames), "n_features": int(n_features), "seed": cfg.seed, "threads": threads,
        "device": device,
        "frontend": read_frontend(cfg.data), "data_sha256": dataset_fingerprint(cfg.data, cfg.split),
        "n_train": int(n_train), "n_validation": int(n_validation),
        "untrained_classes": untrained, "versions": package_versions(),
    }


def check_trainable(data: OpenMICData, tr_idx: np.ndarray, va_idx: np.ndarray, source: str) -> None:
    """Refuse training data that cannot give a meaningful model: too few clips to hold out a
    validation clip, no labelled entry to learn from or to tune thresholds on, features that
    are all zero."""
    if len(tr_idx) < 1 or len(va_idx) < 1:
        raise InstrecError(f"{source}: {len(data)} clip(s) in the training partition; at least 2 are needed "
                           "(one is held out for validation)")
    if not data.Y_mask[tr_idx].any():
        raise InstrecError(f"{source}: no labelled entry among the {len(tr_idx)} training clips (Y_mask is all "
                           "False); there is nothing to learn from")
    if not data.Y_mask[va_idx].any():
        raise InstrecError(f"{source}: no labelled entry among the {len(va_idx)} validation clips; raise "
                           "--val-fraction or label more clips")
    if not data.X.any():
        raise InstrecError(f"{source}: every feature value is zero; the features carry no information")


def open_run(cfg: TrainConfig, data: OpenMICData, threads: int, device: str = "cpu") -> Run:
    """Split off the run's validation clips, write their keys, compose its config (``device``:
    the resolved device, recorded)."""
    tr_idx, va_idx = validation_split(len(data), cfg.val_fraction, cfg.seed)
    check_trainable(data, tr_idx, va_idx, str(partition_path(cfg.data, "train", cfg.split)))
    val_set = data.subset(va_idx)
    n_frames, n_features = data.X.shape[1], data.X.shape[2]
    config = run_config(cfg, data.classes, n_frames, n_features, len(tr_idx), len(va_idx), threads,
                        labelled_positive(data.targets[tr_idx], data.Y_mask[tr_idx]), device)
    run_dir = Path(cfg.out)  # created only once the data and its side files have passed
    run_dir.mkdir(parents=True, exist_ok=True)
    write_validation_keys(run_dir, val_set.sample_key)
    return Run(cfg, run_dir, config, tr_idx, val_set,
               loss_function(cfg, data.targets[tr_idx], data.Y_mask[tr_idx]))


def new_model(run: Run) -> torch.nn.Module:
    """The run's initial model (``torch.manual_seed(seed)`` then build); records its config."""
    cfg = run.cfg
    if cfg.concat > 0 and not model_spec(cfg.model).variable_length:
        raise InstrecError(f"model {cfg.model!r} needs clips of exactly {run.config['n_frames']} frames; "
                           "concatenation (--concat) makes longer ones")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, n_classes=len(run.config["classes"]), n_features=run.config["n_features"],
                        n_frames=run.config["n_frames"], **cfg.model_kwargs)
    run.config["model_config"] = dict(model.config)
    # Built (and initialised) on the CPU, then moved: the same initial weights on every device.
    return model.to(run.config.get("device", "cpu"))


def validation_scores(probs: np.ndarray, val_set: OpenMICData, loss_fn: LossFn) -> dict[str, float]:
    """Loss and macro/micro F1 of (N, C) validation probabilities ``probs``."""
    loss = float(loss_fn(torch.from_numpy(probs), torch.from_numpy(val_set.targets), torch.from_numpy(val_set.Y_mask)))
    macro, micro = f1_summary(val_set.Y_true, val_set.Y_mask, probs)
    return {"val_loss": loss, "val_macro_f1": macro, "val_micro_f1": micro}


def end_epoch(run: Run, epoch: int, train_loss: float, val: dict[str, float], seconds: float,
              save_best: Callable[[], None]) -> dict[str, Any]:
    """Record epoch ``epoch`` (0-based); call ``save_best`` when validation macro F1 improved."""
    row = {"epoch": epoch + 1, "train_loss": train_loss, **val, "seconds": seconds}
    run.state["history"].append(row)
    if val["val_macro_f1"] > run.state["best_f1"]:
        run.state["best_f1"], run.state["best_epoch"] = val["val_macro_f1"], epoch + 1
        save_best()
    run.state["epoch"] = epoch + 1
    return row


def finish_run(run: Run) -> dict[str, Any]:
    """Tune per-class thresholds with the best weights and complete ``config.json``."""
    model = model_of(run.run_dir, run.config)
    probs = run_model(model, run.val_set.X).clip
    config, state = run.config, run.state
    config["thresholds"] = [float(t) for t in tune_thresholds(run.val_set.Y_true, run.val_set.Y_mask, probs)]
    config["best_epoch"], config["best_val_macro_f1"] = state["best_epoch"], state["best_f1"]
    config["epochs_run"] = state["epoch"]
    mark_finished(config)  # last: a run killed before this line is known to be unfinished
    write_config(run.run_dir, config)
    return config


def reusable(cfg: TrainConfig, overwrite: bool) -> bool:
    """Whether the run folder ``cfg.out`` holds a finished, evaluated run of exactly these
    settings on this dataset's content (then a pipeline reuses it). A run of other settings
    is an error, or with ``overwrite`` removed so that it is trained again; an unfinished
    run of these settings is left to be resumed."""
    run_dir = Path(cfg.out)
    if not (run_dir / CONFIG_FILE).is_file():
        return False
    try:
        changed = stale_settings(run_dir, asdict(cfg), dataset_fingerprint(cfg.data, cfg.split), setting_defaults())
    except InstrecError:
        if not overwrite:
            raise
        changed = ["config.json unreadable"]
    if changed:
        if not overwrite:
            raise InstrecError(f"{run_dir / CONFIG_FILE}: this run was trained with other settings "
                               f"({', '.join(changed)}); pass --overwrite to train it again")
        clear_run(run_dir)
        return False
    config = read_config(run_dir)
    epochs_done = config.get("epochs_run") == cfg.epochs or not model_spec(cfg.model).neural  # a forest: 1 fit
    return (run_dir / METRICS_FILE).is_file() and run_finished(config) and epochs_done

"""Training: the paper's protocol, readable top to bottom.

``train(TrainConfig(...))`` loads the training partition, holds out a seeded 15 % for
validation, trains with Adam on the masked focal (or BCE) loss with optional mixup and
concatenation, keeps the weights with the best validation macro F1, tunes per-class
thresholds on the validation split, and writes everything a run needs into ``out``.
After every epoch the complete state (weights, Adam moments, RNG states) is saved, so
``resume=True`` continues an interrupted run to the same final weights.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from instrec._io import InstrecError, atomic_write_json, atomic_write_text
from instrec.run import (CONFIG_FILE, RESUME_STATE, RESUME_WEIGHTS, load_tensors, save_model,
                                save_tensors, write_config)
from instrec.runinfo import package_versions, set_threads

LOG_FILE = "train_log.csv"
VALIDATION_KEYS = "validation-keys.csv"


@dataclass
class TrainConfig:
    """Everything that determines a training run. Defaults are the paper's settings."""

    data: str
    out: str
    model: str = "bilstm-att"
    loss: str = "focal"            # "focal" or "bce"
    focal_alpha: float = 0.75
    focal_gamma: float = 2.0
    mixup: float = 0.0             # a of lambda ~ Beta(a, a); 0 switches mixup off
    concat: float = 0.0            # probability that a batch is replaced by 2-clip concatenations
    epochs: int = 200
    batch_size: int = 32
    lr: float = 5e-4
    val_fraction: float = 0.15
    seed: int = 0
    split: str = "split01"
    threads: int = 0               # torch intra-op threads; 0 = auto (cores, at most 2)
    compile: str = "auto"          # torch.compile the training step: auto, on, off (instrec.training.step)
    rf_trees: int = 100
    rf_max_depth: int = 8
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        from instrec.models import MODEL_NAMES
        from instrec.training.step import check_compile_mode

        if self.model not in (*MODEL_NAMES, "rf"):
            raise InstrecError(f"unknown model {self.model!r}; choose one of {', '.join((*MODEL_NAMES, 'rf'))}")
        if self.loss not in ("focal", "bce"):
            raise InstrecError(f"unknown loss {self.loss!r}; choose 'focal' or 'bce'")
        check_compile_mode(self.compile)
        checks = [(self.epochs >= 1, "epochs must be >= 1"), (self.batch_size >= 1, "batch size must be >= 1"),
                  (self.lr > 0, "learning rate must be > 0"), (self.mixup >= 0, "mixup Beta parameter must be >= 0"),
                  (0 <= self.concat <= 1, "concat probability must be in [0, 1]"),
                  (0 < self.val_fraction < 1, "validation fraction must be in (0, 1)")]
        for ok, message in checks:
            if not ok:
                raise InstrecError(message)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def dataset_frontend(data_dir: str | Path) -> dict[str, Any]:
    """The front end a dataset's features came from (``frontend.json``); the OpenMIC
    release carries none, and its features are the official VGGish ones."""
    path = Path(data_dir) / "frontend.json"
    if path.is_file():
        return json.loads(path.read_text())
    return {"name": "vggish", "source": "assumed: OpenMIC-2018 release features (no frontend.json)"}


def run_config(cfg: TrainConfig, classes, n_frames: int, n_features: int, n_train: int, n_validation: int,
               threads: int, train_positive=None) -> dict[str, Any]:
    """The ``config.json`` content known before training (model_config and results come later).

    ``train_positive`` (C,) bool: whether the training clips hold a labelled positive of each
    instrument; the others are recorded as ``untrained_classes`` and never tagged present."""
    untrained = [] if train_positive is None else [c for c, ok in zip(classes, train_positive) if not ok]
    return {
        "model": cfg.model, "train": asdict(cfg), "classes": list(classes),
        "n_frames": int(n_frames), "n_features": int(n_features), "seed": cfg.seed, "threads": threads,
        "frontend": dataset_frontend(cfg.data), "n_train": int(n_train), "n_validation": int(n_validation),
        "untrained_classes": untrained, "versions": package_versions(),
    }


def labelled_positive(targets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(C,) bool: instruments with at least one labelled positive among (N, C) targets."""
    return ((targets >= 0.5) & mask).any(axis=0)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train one model; return the run summary (also in ``config.json``)."""
    import torch

    from instrec.data.openmic import load_split, validation_split
    from instrec.models import build_model
    from instrec.training.step import TrainingStep

    cfg.validate()
    run_dir = Path(cfg.out)
    check_run_dir(run_dir, resume, overwrite)
    threads = set_threads(cfg.threads)

    data = load_split(cfg.data, "train", cfg.split)
    tr_idx, va_idx = validation_split(len(data), cfg.val_fraction, cfg.seed)
    train_set, val_set = data.subset(tr_idx), data.subset(va_idx)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / VALIDATION_KEYS, "".join(k + "\n" for k in val_set.sample_key))
    n_frames, n_features = train_set.X.shape[1], train_set.X.shape[2]
    config = run_config(cfg, data.classes, n_frames, n_features, len(train_set), len(val_set), threads,
                        labelled_positive(train_set.targets, train_set.Y_mask))
    if cfg.model == "rf":
        return _train_forest(cfg, config, train_set, val_set, run_dir)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, n_classes=len(data.classes), n_features=n_features, n_frames=n_frames,
                        **cfg.model_kwargs)
    if cfg.concat > 0 and not model.variable_length:
        raise InstrecError(f"model {cfg.model!r} needs clips of exactly {n_frames} frames; "
                           "concatenation (--concat) makes longer ones")
    config["model_config"] = dict(model.config)
    optimizer = make_optimizer(model.parameters(), cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    state = {"epoch": 0, "best_f1": -1.0, "best_epoch": -1, "history": []}
    if resume and (run_dir / RESUME_STATE).is_file():
        check_same_run(run_dir, config)
        state = _load_resume(run_dir, model, optimizer, generator)
    write_config(run_dir, config)

    X = torch.from_numpy(train_set.X)
    Y = torch.from_numpy(train_set.targets)
    M = torch.from_numpy(train_set.Y_mask)
    loss_fn = loss_function(cfg)
    step = TrainingStep(model, loss_fn, cfg.compile, cfg.batch_size,
                        total_steps=cfg.epochs * -(-len(X) // cfg.batch_size))
    epochs = range(state["epoch"], cfg.epochs)
    bar = _progress(epochs, progress, cfg)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            x, y, m = augment_batch(*gather_rows(idx, X, Y, M), cfg, generator)
            loss = step(x, y, m)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        val = _validate(model, val_set, loss_fn)
        row = {"epoch": epoch + 1, "train_loss": total / count, **val, "seconds": time.perf_counter() - t0}
        state["history"].append(row)
        if val["val_macro_f1"] > state["best_f1"]:
            state["best_f1"], state["best_epoch"] = val["val_macro_f1"], epoch + 1
            save_model(run_dir, model)
        state["epoch"] = epoch + 1
        _save_resume(run_dir, model, optimizer, generator, state)
        write_log(run_dir, state["history"])
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_f1=f"{val['val_macro_f1']:.3f}")
    config["training_engine"] = {"engine": step.engine, "reason": step.reason}
    return finish_run(run_dir, config, state, val_set)


def make_optimizer(params, lr: float):
    """Adam with PyTorch's defaults (betas 0.9/0.999, eps 1e-8), as Keras' Adam up to eps,
    on the fused CPU kernel (see :mod:`instrec.training.optim`). It is elementwise, so the lockstep
    engine's Adam over stacked weights stays bit-identical to solo runs."""
    from instrec.training.optim import FusedAdam

    return FusedAdam(params, lr=lr)


def gather_rows(rows, *tensors):
    """Rows ``rows`` (1-D int64 tensor) of each tensor, e.g. a batch of (X, Y, M).

    ``index_select`` makes the same copy as ``t[rows]``, several times faster on CPU."""
    return tuple(t.index_select(0, rows) for t in tensors)


def augment_batch(x, y, m, cfg: TrainConfig, generator):
    """Mixup, then concatenation, drawn from the run's generator so runs are reproducible."""
    import torch

    from instrec.data import augment

    if cfg.mixup > 0:
        lam = augment.sample_mixup_lambda(generator, len(x), cfg.mixup)
        x, y, m = augment.mixup(x, y, m, lam, torch.randperm(len(x), generator=generator))
    if cfg.concat > 0 and float(torch.rand((), generator=generator)) < cfg.concat:
        x, y, m = augment.concat(x, y, m, [torch.randperm(len(x), generator=generator)])
    return x, y, m


def loss_function(cfg: TrainConfig):
    from instrec.training import losses

    if cfg.loss == "bce":
        return losses.masked_bce
    return lambda p, y, m: losses.masked_focal_loss(p, y, m, alpha=cfg.focal_alpha, gamma=cfg.focal_gamma)


def _validate(model, val_set, loss_fn) -> dict[str, float]:
    from instrec.models.inference import run_model

    return validation_scores(run_model(model, val_set.X).clip, val_set, loss_fn)


def validation_scores(probs: np.ndarray, val_set, loss_fn) -> dict[str, float]:
    """Loss and macro/micro F1 of (N, C) validation probabilities ``probs``."""
    import torch

    from instrec.evaluation.metrics import f1_summary

    loss = float(loss_fn(torch.from_numpy(probs), torch.from_numpy(val_set.targets), torch.from_numpy(val_set.Y_mask)))
    macro, micro = f1_summary(val_set.Y_true, val_set.Y_mask, probs)
    return {"val_loss": loss, "val_macro_f1": macro, "val_micro_f1": micro}


def finish_run(run_dir: Path, config: dict[str, Any], state: dict[str, Any], val_set) -> dict[str, Any]:
    """Tune per-class thresholds with the best weights and complete ``config.json``."""
    from instrec.run import load_model
    from instrec.models.inference import run_model
    from instrec.evaluation.metrics import tune_thresholds

    model, _ = load_model(run_dir)
    probs = run_model(model, val_set.X).clip
    config["thresholds"] = [float(t) for t in tune_thresholds(val_set.Y_true, val_set.Y_mask, probs)]
    config["best_epoch"], config["best_val_macro_f1"] = state["best_epoch"], state["best_f1"]
    config["epochs_run"] = state["epoch"]
    write_config(run_dir, config)
    return config


def _train_forest(cfg: TrainConfig, config: dict[str, Any], train_set, val_set, run_dir: Path) -> dict[str, Any]:
    from instrec.models.inference import run_model
    from instrec.evaluation.metrics import f1_summary
    from instrec.models.forest import RandomForestBaseline

    forest = RandomForestBaseline(n_estimators=cfg.rf_trees, max_depth=cfg.rf_max_depth, random_state=cfg.seed)
    forest.fit(train_set.X, train_set.targets, train_set.Y_mask)
    save_model(run_dir, forest)
    macro, micro = f1_summary(val_set.Y_true, val_set.Y_mask, run_model(forest, val_set.X).clip)
    config["model_config"] = {"n_estimators": cfg.rf_trees, "max_depth": cfg.rf_max_depth}
    state = {"epoch": 1, "best_f1": macro, "best_epoch": 1, "history": [{"epoch": 1, "val_macro_f1": macro,
                                                                           "val_micro_f1": micro}]}
    write_log(run_dir, state["history"])
    write_config(run_dir, config)
    return finish_run(run_dir, config, state, val_set)


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    if resume:
        return
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise InstrecError(f"{run_dir}: output directory is not empty; pass --overwrite to replace it "
                           "or --resume to continue it")
    if overwrite:
        for name in (CONFIG_FILE, RESUME_STATE, RESUME_WEIGHTS, LOG_FILE, "model.safetensors"):
            (run_dir / name).unlink(missing_ok=True)


def check_same_run(run_dir: Path, config: dict[str, Any]) -> None:
    """Resuming is only meaningful with the settings the run started with (epochs may grow)."""
    from instrec.run import read_config

    old = dict(read_config(run_dir)["train"])
    new = dict(config["train"])
    for key in ("epochs", "out", "compile"):
        old.pop(key, None), new.pop(key, None)
    changed = sorted(k for k in new if old.get(k) != new[k])
    if changed:
        raise InstrecError(f"{run_dir / CONFIG_FILE}: cannot resume with different settings ({', '.join(changed)})")


def _save_resume(run_dir: Path, model, optimizer, generator, state: dict[str, Any]) -> None:
    import torch

    from instrec.models.dropout import rng_states

    save_resume_state(run_dir, model.state_dict(), optimizer.state_dict(), torch.get_rng_state(),
                      generator.get_state(), rng_states(model), state)


def save_resume_state(run_dir: Path, model_state: dict[str, Any], opt_state: dict[str, Any], torch_rng,
                      generator_rng, mask_rngs: list[dict[str, Any]], state: dict[str, Any]) -> None:
    """Write ``last.safetensors`` + ``last.json``: weights, Adam state (``optimizer.state_dict()``
    layout), the global torch RNG state (the GRU's dropout), the run generator's state (data
    order) and the model's dropout streams (``mask_rngs``, see :mod:`instrec.models.dropout`)."""
    import torch

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
    return state, model_state, opt_state, rngs


def _load_resume(run_dir: Path, model, optimizer, generator) -> dict[str, Any]:
    import torch

    from instrec.models.dropout import set_rng_states

    state, model_state, opt_state, rng = read_resume_state(run_dir)
    model.load_state_dict(model_state)
    optimizer.load_state_dict(opt_state)
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    if rng["masks"] is None:
        raise InstrecError(f"{run_dir / RESUME_STATE}: no dropout stream states (written by an older instrec); "
                           "start the run again with --overwrite")
    set_rng_states(model, rng["masks"])
    return state


def write_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(run_dir / LOG_FILE, buf.getvalue())


def _progress(epochs: range, enabled: bool, cfg: TrainConfig):
    if not enabled:
        return epochs
    from tqdm import tqdm

    return tqdm(epochs, total=cfg.epochs, initial=epochs.start, desc=f"train {cfg.model}", unit="epoch")

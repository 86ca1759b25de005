"""Training: the paper's protocol, readable top to bottom.

``train(TrainConfig(...))`` loads the training partition, holds out a seeded 15 % for
validation, trains with Adam on the masked focal (or BCE) loss with optional mixup and
concatenation, keeps the weights with the best validation macro F1, tunes per-class
thresholds on the validation split, and writes everything a run needs into ``out``
(files: :mod:`instrec.run`; the steps every run goes through: :mod:`instrec.training.lifecycle`).
After every epoch the complete state (weights, Adam moments, RNG states) is saved, so
``resume=True`` continues an interrupted run to the same final weights.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from instrec._io import InstrecError, OutputLock
from instrec.data.openmic import OpenMICData, load_split
from instrec.device import is_accelerator, resolve_device
from instrec.evaluation.metrics import f1_summary
from instrec.models import model_spec
from instrec.models.dropout import rng_states, set_rng_states
from instrec.models.inference import run_model
from instrec.resume import has_resume_state, read_resume_state, save_resume_state
from instrec.run import (
    check_run_dir,
    check_same_run,
    read_config,
    save_model,
    write_config,
    write_log,
)
from instrec.runinfo import set_threads
from instrec.training.batches import augment_batch, gather_rows
from instrec.training.config import TrainConfig, setting_defaults
from instrec.training.lifecycle import (
    Run,
    end_epoch,
    finish_run,
    new_model,
    open_run,
    validation_scores,
)
from instrec.training.optim import make_optimizer
from instrec.training.pseudo import teacher_pseudo_labels
from instrec.training.step import TrainingStep


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train one model; return the run summary (also in ``config.json``). The run folder is
    locked while it trains: a second ``train`` into it is refused."""
    cfg.validate()
    device = resolve_device(cfg.device)  # a missing GPU is an error before any work
    with OutputLock(cfg.out):
        return _train(cfg, resume, overwrite, progress, device)


def _train(cfg: TrainConfig, resume: bool, overwrite: bool, progress: bool, device: str) -> dict[str, Any]:
    check_run_dir(Path(cfg.out), resume, overwrite)
    threads = set_threads(cfg.threads)
    data = load_split(cfg.data, "train", cfg.split)
    run = open_run(cfg, data, threads, device if model_spec(cfg.model).neural else "cpu")  # a forest: CPU
    train_set = data.subset(run.train_rows)
    if not model_spec(cfg.model).neural:
        return _fit_forest(run, train_set)

    model = new_model(run)
    optimizer = make_optimizer(model.parameters(), cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    targets, mask = train_set.targets, train_set.Y_mask
    if cfg.teacher:
        targets, mask, run.config["pseudo_labels"] = teacher_pseudo_labels(cfg.teacher, data, run.train_rows,
                                                                           cfg.data, cfg.pseudo_precision)
    if resume and has_resume_state(run.run_dir):
        check_same_run(run.run_dir, run.config, setting_defaults())
        _check_same_teacher(run)
        run.state = _load_resume(run.run_dir, model, optimizer, generator)
    write_config(run.run_dir, run.config)

    # The data stays on the CPU, where the run's generator draws batch order and augmentation
    # (the same draws on every device); each batch is copied to the device.
    X = torch.from_numpy(train_set.X)
    Y = torch.from_numpy(targets)
    M = torch.from_numpy(mask)
    on_device = is_accelerator(device)
    step = TrainingStep(model, run.loss_fn, cfg.compile, cfg.batch_size,
                        total_steps=cfg.epochs * -(-len(X) // cfg.batch_size))
    epochs = range(run.state["epoch"], cfg.epochs)
    bar = tqdm(epochs, total=cfg.epochs, initial=epochs.start, desc=f"train {cfg.model}", unit="epoch",
               disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        # On a GPU the loss sum stays there (no wait for the device every step); float64 sums
        # of float32 losses times batch sizes, in the order the CPU loop adds them.
        device_total = torch.zeros((), dtype=torch.float64, device=device) if on_device else None
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            x, y, m = augment_batch(*gather_rows(idx, X, Y, M), cfg, generator)
            if on_device:
                x, y, m = (t.to(device, non_blocking=True) for t in (x, y, m))
            loss = step(x, y, m)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device_total is not None:
                device_total += loss.detach().double() * len(idx)
            else:
                total += loss.item() * len(idx)
            count += len(idx)
        if device_total is not None:
            total = float(device_total)
        val = validation_scores(run_model(model, run.val_set.X).clip, run.val_set, run.loss_fn)
        row = end_epoch(run, epoch, total / count, val, time.perf_counter() - t0,
                        save_best=lambda: save_model(run.run_dir, model))
        save_resume_state(run.run_dir, model.state_dict(), optimizer.state_dict(), torch.get_rng_state(),
                          generator.get_state(), rng_states(model), run.state)
        write_log(run.run_dir, run.state["history"])
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", val_f1=f"{val['val_macro_f1']:.3f}")
    run.config["training_engine"] = {"engine": step.engine, "reason": step.reason}
    return finish_run(run)


def _fit_forest(run: Run, train_set: OpenMICData) -> dict[str, Any]:
    """The random-forest baseline is fitted once; its one 'epoch' is the fit."""
    # Imported here: scikit-learn (with scipy and pandas) takes longer to import than a short
    # neural run's first epoch, and only this baseline needs it.
    from instrec.models.forest import RandomForestBaseline

    cfg = run.cfg
    forest = RandomForestBaseline(n_estimators=cfg.rf_trees, max_depth=cfg.rf_max_depth, random_state=cfg.seed)
    forest.fit(train_set.X, train_set.targets, train_set.Y_mask)
    save_model(run.run_dir, forest)
    macro, micro = f1_summary(run.val_set.Y_true, run.val_set.Y_mask, run_model(forest, run.val_set.X).clip)
    run.config["model_config"] = {"n_estimators": cfg.rf_trees, "max_depth": cfg.rf_max_depth}
    run.state = {"epoch": 1, "best_f1": macro, "best_epoch": 1,
                 "history": [{"epoch": 1, "val_macro_f1": macro, "val_micro_f1": micro}]}
    write_log(run.run_dir, run.state["history"])
    write_config(run.run_dir, run.config)
    return finish_run(run)


def _check_same_teacher(run: Run) -> None:
    """A resumed run must see the pseudo-labels it started with: same teacher weights."""
    old = (read_config(run.run_dir).get("pseudo_labels") or {}).get("teacher_model_sha256")
    new = (run.config.get("pseudo_labels") or {}).get("teacher_model_sha256")
    if old != new:
        raise InstrecError(f"{run.run_dir}: cannot resume: the teacher's weights changed since the run started")


def _load_resume(run_dir: Path, model, optimizer, generator) -> dict[str, Any]:
    """Restore weights, Adam state and every RNG from the resume files; return the record."""
    state, model_state, opt_state, rng = read_resume_state(run_dir)
    model.load_state_dict(model_state)
    optimizer.load_state_dict(opt_state)
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    set_rng_states(model, rng["masks"])
    return state

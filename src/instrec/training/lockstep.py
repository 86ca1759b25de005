"""Lockstep training: K runs of one architecture trained together in one process.

``train_lockstep([cfg_1, ..., cfg_K])`` trains K ``TrainConfig`` runs that share the data,
model, epochs, batch size, learning rate and validation fraction but may differ in seed,
loss and augmentation (mixup, concat). Their weights are stacked (see
:mod:`instrec.models.stacked`): the members' recurrences run as one batched recurrence,
one Adam step and one backward pass serve all members.

Every member reproduces ``train(cfg)`` run alone (``bilstm-att`` bit for bit, ``att`` up to
float rounding, see :mod:`instrec.models.stacked`): its own validation split,
its own seeded generator for batch order and augmentation (drawn in the same order as
:func:`instrec.training.batches.augment_batch`), the same initial weights (``torch.manual_seed(seed)``
then ``build_model``), the same dropout masks (drawn from the dropout stream of the
member's own solo model, see :mod:`instrec.models.dropout`) and the same operations (in
another summation order for ``att``). One Adam over the stacked weights, stepped on the sum of the
member losses, is K independent Adams (Adam is elementwise and all members take the same
number of steps). Members whose concatenation draw makes 2T-frame batches run as a
separate length group within the step.

Each member writes an ordinary run directory (``config.json``, ``model.safetensors``,
``train_log.csv``, ``validation-keys.csv`` and the resume state ``last.*``), so
``instrec evaluate`` and ``train(cfg, resume=True)`` work on it unchanged. With
``resume=True``, finished members are skipped, and the others continue from their resume
states when they all stopped after the same epoch; otherwise (e.g. a crash while the
states were being written) the group restarts from scratch. The column ``seconds`` of
``train_log.csv`` is the whole group's wall time for the epoch.
"""
from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from instrec._io import InstrecError, OutputLock
from instrec.data.openmic import load_split
from instrec.device import module_device, resolve_device
from instrec.models import STACKABLE_MODELS, model_spec
from instrec.models.dropout import MaskRNG, mask_rngs
from instrec.models.inference import DEFAULT_BATCH
from instrec.resume import has_resume_state, read_resume_state, save_resume_state
from instrec.run import (
    CONFIG_FILE,
    check_run_dir,
    check_same_run,
    is_finished,
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
from instrec.training.loop import train
from instrec.training.optim import make_optimizer

#: Settings every member of a lockstep group must share.
SHARED_SETTINGS = ("data", "split", "model", "epochs", "batch_size", "lr", "val_fraction", "threads",
                   "device", "model_kwargs")
#: Members per validation forward pass (bounds its memory: about 20 MB per member).
_EVAL_MEMBERS = 4


def group_key(cfg: TrainConfig) -> str:
    """Configs with equal keys can train in one lockstep group."""
    return json.dumps({k: getattr(cfg, k) for k in SHARED_SETTINGS}, sort_keys=True)


@dataclass
class _Member:
    """One run of a group: its run record, its tensor of training rows and its RNGs."""

    run: Run
    train_rows: torch.Tensor  # (n_train,) int64: rows of the training partition
    data_rng: torch.Generator  # batch order and augmentation
    dropout_rng: MaskRNG       # the solo model's dropout stream
    torch_rng: torch.Tensor    # the global torch RNG state a solo run would save (not used in training)

    @property
    def cfg(self) -> TrainConfig:
        return self.run.cfg


def train_lockstep(cfgs: Sequence[TrainConfig], resume: bool = False, overwrite: bool = False,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Train ``cfgs`` in lockstep; return each run's summary (its ``config.json``), in order.

    Architectures without a stacked implementation, and single runs, train solo one after
    the other with :func:`instrec.training.loop.train`."""
    cfgs = list(cfgs)
    if not cfgs:
        return []
    for cfg in cfgs:
        cfg.validate()
    if cfgs[0].model not in STACKABLE_MODELS or len(cfgs) == 1:
        return [train(c, resume=resume, overwrite=overwrite, progress=progress) for c in cfgs]
    key = group_key(cfgs[0])
    for cfg in cfgs[1:]:
        if group_key(cfg) != key:
            a, b = asdict(cfgs[0]), asdict(cfg)
            diff = [k for k in SHARED_SETTINGS if a[k] != b[k]]
            raise InstrecError(f"{cfg.out}: lockstep runs must share {', '.join(diff)} with {cfgs[0].out}")
    outs = [str(Path(c.out).resolve()) for c in cfgs]
    if len(set(outs)) != len(outs):
        raise InstrecError("lockstep runs need distinct output directories")
    results: list[dict[str, Any] | None] = [None] * len(cfgs)
    todo = []
    for i, cfg in enumerate(cfgs):
        run_dir = Path(cfg.out)
        if resume and _finished(run_dir, cfg):
            results[i] = read_config(run_dir)
            continue
        check_run_dir(run_dir, resume, overwrite)
        todo.append(i)
    if len(todo) == 1:
        results[todo[0]] = train(cfgs[todo[0]], resume=resume, overwrite=overwrite, progress=progress)
    elif todo:
        with ExitStack() as locks:  # every run folder of the group, as train() locks its one
            for i in todo:
                locks.enter_context(OutputLock(cfgs[i].out))
            for i, summary in zip(todo, _train_group([cfgs[i] for i in todo], resume, progress)):
                results[i] = summary
    return [r for r in results if r is not None]


def _finished(run_dir: Path, cfg: TrainConfig) -> bool:
    """A complete run of these settings (refuses a run of other settings, as resuming does)."""
    if not (run_dir / CONFIG_FILE).is_file():
        return False
    check_same_run(run_dir, {"train": asdict(cfg)}, setting_defaults())
    return is_finished(run_dir, cfg.epochs)


def _train_group(cfgs: list[TrainConfig], resume: bool, progress: bool) -> list[dict[str, Any]]:
    first = cfgs[0]
    if any(cfg.teacher for cfg in cfgs):
        raise InstrecError("lockstep training shares one set of training labels: train runs with a teacher "
                           "(pseudo-labels) alone")
    device = resolve_device(first.device)
    threads = set_threads(first.threads)
    data = load_split(first.data, "train", first.split)
    members, solo_models = [], []
    for cfg in cfgs:
        run = open_run(cfg, data, threads, device)
        model = new_model(run)
        (dropout_rng,) = mask_rngs(model)  # every stacked architecture drops from one stream
        solo_models.append(model)
        members.append(_Member(run, torch.from_numpy(run.train_rows), torch.Generator().manual_seed(cfg.seed),
                               dropout_rng, torch.get_rng_state()))
    stacked = model_spec(first.model).stacked(solo_models)
    template = solo_models[0]
    optimizer = make_optimizer(stacked.parameters(), first.lr)
    if resume:
        _resume(members, stacked, optimizer)
    for m in members:
        write_config(m.run.run_dir, m.run.config)

    X = torch.from_numpy(data.X)
    Y = torch.from_numpy(data.targets)
    M = torch.from_numpy(data.Y_mask)
    X_val = torch.stack([torch.from_numpy(m.run.val_set.X) for m in members])
    epochs = range(members[0].run.state["epoch"], first.epochs)
    bar = tqdm(epochs, total=first.epochs, initial=epochs.start, desc=f"lockstep {first.model} x{len(members)}",
               unit="epoch", disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        losses = _train_epoch(stacked, optimizer, members, X, Y, M, first.batch_size)
        probs = predict_members(stacked, X_val)
        seconds = time.perf_counter() - t0
        for k, m in enumerate(members):
            val = validation_scores(probs[k], m.run.val_set, m.run.loss_fn)
            end_epoch(m.run, epoch, losses[k], val, seconds, save_best=lambda k=k, m=m: _save_member(stacked, k, template, m))
        _save_states(members, stacked, optimizer, template)
        bar.set_postfix(best_val_f1=f"{max(m.run.state['best_f1'] for m in members):.3f}")
    for m in members:
        m.run.config["training_engine"] = {"engine": "lockstep", "reason": None}
    return [finish_run(m.run) for m in members]


def _save_member(stacked, k: int, template, m: _Member) -> None:
    """Member k's current weights as its best model."""
    template.load_state_dict(stacked.member_state(k))
    save_model(m.run.run_dir, template)


def _train_epoch(stacked, optimizer, members: list[_Member], X, Y, M, batch_size: int) -> list[float]:
    """One epoch for all members; returns each member's mean training loss (as ``train``)."""
    stacked.train()
    n_train = len(members[0].train_rows)
    orders = [torch.randperm(n_train, generator=m.data_rng) for m in members]
    dropout_rngs = [m.dropout_rng for m in members]
    totals = [0.0] * len(members)
    count = 0
    device = module_device(stacked)  # batches are drawn on the CPU and copied there
    for start in range(0, n_train, batch_size):
        batches = []
        for m, order in zip(members, orders):
            rows = m.train_rows[order[start:start + batch_size]]
            batch = augment_batch(*gather_rows(rows, X, Y, M), m.cfg, m.data_rng)
            batches.append(batch if device.type == "cpu" else tuple(t.to(device, non_blocking=True) for t in batch))
        by_length: dict[int, list[int]] = {}
        for k, (x, _, _) in enumerate(batches):
            by_length.setdefault(x.shape[1], []).append(k)
        member_losses: list[Any] = [None] * len(members)
        for ks in by_length.values():
            clips = stacked(torch.stack([batches[k][0] for k in ks]), ks, dropout_rngs)
            for k, clip in zip(ks, clips):
                member_losses[k] = members[k].run.loss_fn(clip, batches[k][1], batches[k][2])
        losses = torch.stack(member_losses)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        n = len(batches[0][0])
        for k, value in enumerate(losses.tolist()):
            totals[k] += value * n
        count += n
    return [t / count for t in totals]


def predict_members(stacked, X_val) -> np.ndarray:
    """Eval-mode clip probabilities (K, N, C) of every member on its own clips X_val (K, N, T, F).

    Clips go in chunks of ``run_model``'s batch size per member, as in a solo run's
    validation; ``_EVAL_MEMBERS`` members at a time bound the memory."""
    was_training = stacked.training
    device = module_device(stacked)
    stacked.eval()
    k, n = X_val.shape[:2]
    chunk = DEFAULT_BATCH
    out = np.empty((k, n, stacked.config["n_classes"]), np.float32)
    with torch.inference_mode():
        for m0 in range(0, k, _EVAL_MEMBERS):
            members = list(range(m0, min(k, m0 + _EVAL_MEMBERS)))
            for s in range(0, n, chunk):
                clips = stacked(X_val[m0:members[-1] + 1, s:s + chunk].to(device), members)
                out[m0:members[-1] + 1, s:s + chunk] = torch.stack(clips).cpu().numpy()
    stacked.train(was_training)
    return out


def _member_optimizer_state(opt_state: dict[str, Any], k: int) -> dict[str, Any]:
    """Member k's slice of the stacked Adam state, in ``optimizer.state_dict()`` layout."""
    state = {pid: {name: (v[k] if name != "step" else v) for name, v in slots.items()}
             for pid, slots in opt_state["state"].items()}
    return {"state": state, "param_groups": opt_state["param_groups"]}


def _save_states(members: list[_Member], stacked, optimizer, template) -> None:
    """Per member: the resume state a solo run would write, and the training log."""
    opt_state = optimizer.state_dict()
    for k, m in enumerate(members):
        template.load_state_dict(stacked.member_state(k))
        save_resume_state(m.run.run_dir, template.state_dict(), _member_optimizer_state(opt_state, k),
                          m.torch_rng, m.data_rng.get_state(), [m.dropout_rng.get_state()], m.run.state)
        write_log(m.run.run_dir, m.run.state["history"])


def _resume(members: list[_Member], stacked, optimizer) -> None:
    """Continue from the members' resume states if they all stopped after the same epoch."""
    if not all(has_resume_state(m.run.run_dir) for m in members):
        return
    saved = [read_resume_state(m.run.run_dir) for m in members]
    if len({s[0]["epoch"] for s in saved}) != 1 or any(len(s[3]["masks"] or ()) != 1 for s in saved):
        return
    for m in members:
        check_same_run(m.run.run_dir, m.run.config, setting_defaults())
    slots: dict[int, dict[str, Any]] = {}
    for k, (m, (state, model_state, opt_state, rng)) in enumerate(zip(members, saved)):
        m.run.state = state
        stacked.load_member(k, model_state)
        m.torch_rng = rng["torch"]
        m.dropout_rng.set_state(rng["masks"][0])
        m.data_rng.set_state(rng["generator"])
        for pid, values in opt_state["state"].items():
            for name, value in values.items():
                slots.setdefault(pid, {}).setdefault(name, []).append(value)
    stacked_state = {pid: {name: (vals[0] if name == "step" else torch.stack(vals)) for name, vals in s.items()}
                     for pid, s in slots.items()}
    optimizer.load_state_dict({"state": stacked_state, "param_groups": saved[0][2]["param_groups"]})


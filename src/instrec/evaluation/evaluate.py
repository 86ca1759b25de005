"""Evaluating a run directory on a split of an OpenMIC-layout dataset.

Writes ``metrics.json`` (overall and per-instrument scores at threshold 0.5 and at the
per-instrument thresholds tuned on the validation split), ``per_class.csv`` and
``predictions.npz`` (``sample_key``, ``probabilities`` (N, C), and where the model has
them ``frame_probabilities`` and ``attention`` (N, T, C)); a split other than ``test``
adds its name (``metrics-validation.json``, ...). With localisation, the segment-level
scores against strong labels also go to ``localization/metrics.json`` and, one row per
method and instrument, ``localization/per_class.csv`` (``localization-SPLIT/`` for other
splits). Existing results are replaced only with ``overwrite``; the check and the output
folder's lock come before the work.
"""
from __future__ import annotations

import csv
import io
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from instrec._io import (
    InstrecError,
    OutputLock,
    atomic_save_npz,
    atomic_write_json,
    atomic_write_text,
)
from instrec.data.layout import read_corpus_stats, read_frontend, read_strong_labels
from instrec.data.openmic import OpenMICData, load_split
from instrec.device import resolve_device
from instrec.evaluation.localization import evaluate_localization, frame_agnostic_probs, per_class_table
from instrec.evaluation.metrics import evaluate
from instrec.features import FRAME_SECONDS
from instrec.features.frontends import frontend_problems
from instrec.models import model_spec
from instrec.models.inference import Predictions, run_model, to_device
from instrec.run import (
    LOCALIZATION_METRICS_FILE,
    LOCALIZATION_PER_CLASS_FILE,
    VALIDATION_KEYS,
    eval_files,
    load_model,
    read_validation_keys,
)


def load_eval_split(data_dir: str | Path, split: str, run_dir: Path, split_name: str = "split01"):
    """``test`` / ``train`` partitions, or ``validation``: the run's held-out keys."""
    if split in ("test", "train"):
        return load_split(data_dir, split, split_name)
    if split == "validation":
        keys = read_validation_keys(run_dir)
        data = load_split(data_dir, "train", split_name)
        index = {k: i for i, k in enumerate(data.sample_key)}
        missing = [k for k in keys if k not in index]
        if missing:
            raise InstrecError(f"{run_dir / VALIDATION_KEYS}: {len(missing)} keys not in {data_dir} "
                               f"(first: {missing[0]}); was the run trained on this dataset?")
        return data.subset(np.array([index[k] for k in keys]))
    raise InstrecError(f"unknown split {split!r}; choose test, train or validation")


def check_compatible(config: dict[str, Any], data, data_dir: str | Path, run_dir: Path) -> None:
    """Refuse data whose classes, feature size or front end differ from the run's."""
    if list(data.classes) != list(config["classes"]):
        raise InstrecError(f"{data_dir}: classes differ from those of run {run_dir}")
    if data.X.shape[2] != config["n_features"]:
        raise InstrecError(f"{data_dir}: features have {data.X.shape[2]} values per frame, "
                           f"run {run_dir} was trained on {config['n_features']}")
    theirs, ours = read_frontend(data_dir), config.get("frontend", {})
    if ours.get("name") and theirs["name"] != ours["name"]:
        raise InstrecError(f"{data_dir}: features come from front end {theirs['name']!r} but run {run_dir} "
                           f"was trained on {ours['name']!r}")
    problems = frontend_problems(ours, theirs)
    if problems:
        raise InstrecError(f"{data_dir}: the features' front end differs from the one run {run_dir} was trained "
                           f"on ({'; '.join(problems[:3])})")


def _load(run_dir: Path, data: str | Path | None, split: str, allow_unfinished: bool = False,
          device: str = "cpu"):
    """The run's model (on the resolved ``device``) and config, the evaluation data's folder
    and split, checked compatible."""
    model, config = load_model(run_dir, allow_unfinished=allow_unfinished)
    to_device(model, device)
    recorded = config.get("train", {}).get("data")
    if data is None and recorded is None:
        raise InstrecError(f"{run_dir}: the run does not record its dataset; give it with --data")
    data_dir = Path(data) if data is not None else Path(recorded)
    ds = load_eval_split(data_dir, split, run_dir, config.get("train", {}).get("split", "split01"))
    check_compatible(config, ds, data_dir, run_dir)
    if ds.X.shape[1] != config["n_frames"] and not model_spec(config["model"]).variable_length:
        raise InstrecError(f"{data_dir}: clips have {ds.X.shape[1]} frames, model {config['model']!r} "
                           f"needs {config['n_frames']}")
    return model, config, data_dir, ds


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, split: str = "test",
                 out: str | Path | None = None, localization: bool = False, overwrite: bool = False,
                 allow_unfinished: bool = False, device: str = "auto") -> "OrderedDict[str, Any]":
    """Evaluate ``run_dir`` on ``split`` of ``data`` (default: the training dataset); write
    the files of the module docstring into ``out`` (default ``run_dir``). Prints nothing.

    Existing results of this split are replaced only with ``overwrite``. ``allow_unfinished``:
    score a run whose training did not finish (with a warning). ``device``: where the model
    runs (:mod:`instrec.device`; recorded in ``metrics.json``)."""
    device = resolve_device(device)
    run_dir = Path(run_dir)
    out_dir = Path(out) if out is not None else run_dir
    names = eval_files(split)
    if out_dir.exists() and not out_dir.is_dir():
        raise InstrecError(f"{out_dir}: exists and is not a folder")
    taken = [n for n in (*names, *(_localization_files(split) if localization else ())) if (out_dir / n).exists()]
    if taken and not overwrite:
        raise InstrecError(f"{out_dir / taken[0]}: exists (an earlier evaluation on {split}); "
                           "pass --overwrite to replace it")
    model, config, data_dir, ds = _load(run_dir, data, split, allow_unfinished, device)
    with OutputLock(out_dir / names[0]):
        return _evaluate(run_dir, model, config, data_dir, ds, split, out_dir, names, localization,
                         device if isinstance(model, torch.nn.Module) else "cpu")


def _localization_files(split: str) -> tuple[str, str]:
    """The localisation files of an evaluation on ``split`` (``localization-SPLIT/`` but for test)."""
    if split == "test":
        return LOCALIZATION_METRICS_FILE, LOCALIZATION_PER_CLASS_FILE
    return tuple(n.replace("localization/", f"localization-{split}/", 1)
                 for n in (LOCALIZATION_METRICS_FILE, LOCALIZATION_PER_CLASS_FILE))


def _evaluate(run_dir: Path, model: Any, config: dict[str, Any], data_dir: Path, ds: OpenMICData, split: str,
              out_dir: Path, names: tuple[str, str, str], localization: bool,
              device: str = "cpu") -> "OrderedDict[str, Any]":
    preds = run_model(model, ds.X)
    classes = list(config["classes"])
    at_half = evaluate(ds.Y_true, ds.Y_mask, preds.clip, classes, threshold=0.5)
    thresholds = np.asarray(config.get("thresholds", [0.5] * len(classes)), dtype=np.float64)
    tuned = evaluate(ds.Y_true, ds.Y_mask, preds.clip, classes, threshold=thresholds)

    result: OrderedDict[str, Any] = OrderedDict(
        run_dir=str(run_dir), model=config["model"], data=str(data_dir), split=split, n_clips=len(ds),
        device=device)
    result.update((k, v) for k, v in at_half.items() if k != "per_class")
    result["tuned_thresholds"] = OrderedDict((k, v) for k, v in tuned.items() if k != "per_class")
    result["per_class"] = at_half["per_class"]
    result["per_class_tuned"] = tuned["per_class"]
    if localization:
        result["localization"] = _localization(data_dir, ds, preds, classes, config)

    arrays = {"sample_key": np.asarray(ds.sample_key, dtype=str), "probabilities": preds.clip}
    if preds.frame is not None:
        arrays["frame_probabilities"] = preds.frame
    if preds.attention is not None:
        arrays["attention"] = preds.attention
    metrics_file, per_class_file, predictions_file = names
    atomic_save_npz(out_dir / predictions_file, arrays)
    atomic_write_text(out_dir / per_class_file, _per_class_csv(at_half["per_class"], tuned["per_class"]))
    if localization:
        write_localization(out_dir, result["localization"], _localization_files(split))
    atomic_write_json(out_dir / metrics_file, result)  # last: its presence means the evaluation is complete
    return result


def localize_run(run_dir: str | Path, data: str | Path | None = None, split: str = "test",
                 out: str | Path | None = None) -> dict[str, Any]:
    """Only the localisation part of :func:`evaluate_run`: score the per-frame outputs of
    ``run_dir`` against the strong labels of ``split`` and write ``localization/`` into
    ``out`` (default ``run_dir``), leaving the run's other evaluation files as they are."""
    run_dir = Path(run_dir)
    model, config, data_dir, ds = _load(run_dir, data, split)
    scores = _localization(data_dir, ds, run_model(model, ds.X), list(config["classes"]), config)
    write_localization(Path(out) if out is not None else run_dir, scores)
    return scores


def write_localization(out_dir: Path, scores: dict[str, Any],
                       names: tuple[str, str] = (LOCALIZATION_METRICS_FILE, LOCALIZATION_PER_CLASS_FILE)) -> None:
    """``out_dir/localization/``: ``metrics.json`` (the scores) and ``per_class.csv`` (one row
    per method and instrument: segment F1, precision, recall, error rate and counts);
    ``names``: other (metrics, per-class) paths relative to ``out_dir``."""
    metrics_file, per_class_file = names
    rows = per_class_table({k: scores.get(k) for k in ("frame_level", "frame_agnostic")})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(rows[0]) if rows else ["method", "instrument"])
    for row in rows:
        writer.writerow([_fmt(v) for v in row.values()])
    (out_dir / per_class_file).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / per_class_file, buf.getvalue())
    atomic_write_json(out_dir / metrics_file, scores)


def _per_class_csv(at_half: list[dict[str, Any]], tuned: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    keys = [k for k in at_half[0] if k != "instrument"]
    writer = csv.writer(buf)
    writer.writerow(["instrument", *keys, "tuned_threshold", "tuned_f1"])
    for a, t in zip(at_half, tuned):
        writer.writerow([a["instrument"], *(_fmt(a[k]) for k in keys), _fmt(t["threshold"]), _fmt(t["f1"])])
    return buf.getvalue()


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def _localization(data_dir: Path, ds: OpenMICData, preds: Predictions, classes: list[str],
                  config: dict[str, Any]) -> dict[str, Any]:
    """Segment-based scores of per-frame outputs vs. strong labels, beside a frame-agnostic baseline."""
    events = read_strong_labels(data_dir, classes)
    strong = {k: events.get(k, []) for k in ds.sample_key}
    stats = read_corpus_stats(data_dir)
    eval_classes = stats.get("renderable_classes", classes) if stats else classes
    # T frames of 0.96 s come from a clip of about T s (OpenMIC: 10 frames, 10 s; 0.4 s left over).
    clip_seconds = round(ds.X.shape[1] * FRAME_SECONDS + 0.4)
    out: dict[str, Any] = {"classes": list(eval_classes)}
    agnostic = frame_agnostic_probs(preds.clip, ds.X.shape[1])
    out["frame_agnostic"] = evaluate_localization(strong, dict(zip(ds.sample_key, agnostic)), classes,
                                                  clip_seconds=clip_seconds, eval_classes=eval_classes)
    if preds.frame is not None:
        out["frame_level"] = evaluate_localization(strong, dict(zip(ds.sample_key, preds.frame)), classes,
                                                   clip_seconds=clip_seconds, eval_classes=eval_classes)
    else:
        out["frame_level"] = None
        out["note"] = f"model {config['model']!r} has no per-frame output; only the frame-agnostic scores apply"
    return out

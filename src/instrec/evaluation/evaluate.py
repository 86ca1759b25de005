"""Evaluating a run directory on a split of an OpenMIC-layout dataset.

Writes ``metrics.json`` (overall and per-instrument scores at threshold 0.5 and at the
per-instrument thresholds tuned on the validation split), ``per_class.csv`` and
``predictions.npz`` (``sample_key``, ``probabilities`` (N, C), and where the model has
them ``frame_probabilities`` and ``attention`` (N, T, C)).
"""
from __future__ import annotations

import csv
import io
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from instrec._io import InstrecError, atomic_save_npz, atomic_write_json, atomic_write_text
from instrec.run import load_model
from instrec.training.loop import VALIDATION_KEYS, dataset_frontend

STRONG_LABELS = "strong-labels.csv"


def load_eval_split(data_dir: str | Path, split: str, run_dir: Path, split_name: str = "split01"):
    """``test`` / ``train`` partitions, or ``validation``: the run's held-out keys."""
    from instrec.data.openmic import load_split

    if split in ("test", "train"):
        return load_split(data_dir, split, split_name)
    if split == "validation":
        keys = (run_dir / VALIDATION_KEYS).read_text().split()
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
    theirs, ours = dataset_frontend(data_dir)["name"], config.get("frontend", {}).get("name")
    if ours and theirs != ours:
        raise InstrecError(f"{data_dir}: features come from front end {theirs!r} but run {run_dir} "
                           f"was trained on {ours!r}")


def evaluate_run(run_dir: str | Path, data: str | Path | None = None, split: str = "test",
                 out: str | Path | None = None, localization: bool = False) -> "OrderedDict[str, Any]":
    """Evaluate ``run_dir`` on ``split`` of ``data`` (default: the training dataset)."""
    from instrec.models.inference import run_model
    from instrec.evaluation.metrics import evaluate

    run_dir = Path(run_dir)
    model, config = load_model(run_dir)
    data_dir = Path(data) if data is not None else Path(config["train"]["data"])
    ds = load_eval_split(data_dir, split, run_dir, config["train"].get("split", "split01"))
    check_compatible(config, ds, data_dir, run_dir)
    if ds.X.shape[1] != config["n_frames"] and not getattr(model, "variable_length", False):
        raise InstrecError(f"{data_dir}: clips have {ds.X.shape[1]} frames, model {config['model']!r} "
                           f"needs {config['n_frames']}")
    preds = run_model(model, ds.X)
    classes = list(config["classes"])
    at_half = evaluate(ds.Y_true, ds.Y_mask, preds.clip, classes, threshold=0.5)
    thresholds = np.asarray(config.get("thresholds", [0.5] * len(classes)), dtype=np.float64)
    tuned = evaluate(ds.Y_true, ds.Y_mask, preds.clip, classes, threshold=thresholds)

    result: OrderedDict[str, Any] = OrderedDict(
        run_dir=str(run_dir), model=config["model"], data=str(data_dir), split=split, n_clips=len(ds))
    result.update((k, v) for k, v in at_half.items() if k != "per_class")
    result["tuned_thresholds"] = OrderedDict((k, v) for k, v in tuned.items() if k != "per_class")
    result["per_class"] = at_half["per_class"]
    result["per_class_tuned"] = tuned["per_class"]
    if localization:
        result["localization"] = _localization(data_dir, ds, preds, classes, config)

    out_dir = Path(out) if out is not None else run_dir
    arrays = {"sample_key": np.asarray(ds.sample_key, dtype=str), "probabilities": preds.clip}
    if preds.frame is not None:
        arrays["frame_probabilities"] = preds.frame
    if preds.attention is not None:
        arrays["attention"] = preds.attention
    atomic_save_npz(out_dir / "predictions.npz", arrays)
    atomic_write_text(out_dir / "per_class.csv", _per_class_csv(at_half["per_class"], tuned["per_class"]))
    atomic_write_json(out_dir / "metrics.json", result)
    return result


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


def read_strong_labels(path: Path, classes: list[str]) -> dict[str, list[tuple[str, float, float]]]:
    """Parse ``strong-labels.csv`` (``sample_key,instrument,onset,offset`` in seconds)."""
    events: dict[str, list[tuple[str, float, float]]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != ["sample_key", "instrument", "onset", "offset"]:
            raise InstrecError(f"{path}: header must be sample_key,instrument,onset,offset")
        for line, row in enumerate(reader, start=2):
            try:
                onset, offset = float(row["onset"]), float(row["offset"])
            except (TypeError, ValueError):
                raise InstrecError(f"{path}: line {line}: onset/offset are not numbers") from None
            if row["instrument"] not in classes or not 0 <= onset <= offset:
                raise InstrecError(f"{path}: line {line}: unknown instrument or bad interval")
            events.setdefault(row["sample_key"], []).append((row["instrument"], onset, offset))
    return events


def _localization(data_dir: Path, ds, preds, classes: list[str], config: dict[str, Any]) -> dict[str, Any]:
    """Segment-based scores of per-frame outputs vs. strong labels, beside a frame-agnostic baseline."""
    import json

    from instrec.evaluation.localization import evaluate_localization, frame_agnostic_probs

    path = data_dir / STRONG_LABELS
    if not path.is_file():
        raise InstrecError(f"{path}: not found; --localization needs a dataset with strong labels "
                           "(e.g. one written by 'instrec synth')")
    events = read_strong_labels(path, classes)
    strong = {k: events.get(k, []) for k in ds.sample_key}
    stats_path = data_dir / "corpus-stats.json"
    eval_classes = classes
    if stats_path.is_file():
        eval_classes = json.loads(stats_path.read_text()).get("renderable_classes", classes)
    clip_seconds = ds.X.shape[1] * 0.96 + 0.4  # 10 frames of 0.96 s come from a 10 s clip
    out: dict[str, Any] = {"classes": list(eval_classes)}
    agnostic = frame_agnostic_probs(preds.clip, ds.X.shape[1])
    out["frame_agnostic"] = evaluate_localization(strong, dict(zip(ds.sample_key, agnostic)), classes,
                                                  clip_seconds=round(clip_seconds), eval_classes=eval_classes)
    if preds.frame is not None:
        out["frame_level"] = evaluate_localization(strong, dict(zip(ds.sample_key, preds.frame)), classes,
                                                   clip_seconds=round(clip_seconds), eval_classes=eval_classes)
    else:
        out["frame_level"] = None
        out["note"] = f"model {config['model']!r} has no per-frame output; only the frame-agnostic scores apply"
    return out

"""Checkpoints: weights in safetensors, everything else in JSON. Nothing is ever unpickled.

A run directory holds
- ``config.json``: the resolved training config, the model name and constructor kwargs,
  class names, front end, seed and package versions;
- ``model.safetensors``: the best weights (neural models) or the exported trees (``rf``);
- ``last.safetensors`` + ``last.json``: the state needed to resume training (weights,
  Adam moments, RNG states; epoch counters and history).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from instrec._io import InstrecError, atomic_write_bytes, atomic_write_json

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
RESUME_WEIGHTS = "last.safetensors"
RESUME_STATE = "last.json"


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


def save_tensors(path: str | Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Save a flat dict of torch tensors or numpy arrays to safetensors, atomically."""
    import torch
    from safetensors.torch import save

    flat = {k: (torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v.detach().contiguous())
            for k, v in tensors.items()}
    atomic_write_bytes(path, save(flat, metadata=metadata))


def load_tensors(path: str | Path) -> dict[str, Any]:
    """Load a safetensors file into torch tensors; a clear error if unreadable."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise InstrecError(f"{path}: not found")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise InstrecError(f"{path}: not a readable safetensors file ({exc})") from None


def save_model(run_dir: str | Path, model: Any) -> None:
    """Write the model's weights (torch module or random-forest baseline) to ``model.safetensors``."""
    path = Path(run_dir) / MODEL_FILE
    if hasattr(model, "to_arrays"):
        save_tensors(path, model.to_arrays())
    else:
        save_tensors(path, model.state_dict())


def load_model(run_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild the model of a run directory from its config and weights, in eval mode."""
    config = read_config(run_dir)
    tensors = load_tensors(Path(run_dir) / MODEL_FILE)
    name = config["model"]
    if name == "rf":
        from instrec.models.forest import RandomForestBaseline

        model = RandomForestBaseline.from_arrays({k: v.numpy() for k, v in tensors.items()})
        return model, config
    from instrec.models import build_model

    model = build_model(name, **config["model_config"])
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "shape or name mismatch"
        raise InstrecError(f"{Path(run_dir) / MODEL_FILE}: weights do not fit model {name!r} ({first})") from None
    model.eval()
    return model, config


def write_config(run_dir: str | Path, config: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / CONFIG_FILE, config)

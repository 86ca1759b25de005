"""The resume state of a training run: ``last.safetensors`` + ``last.json`` (file names:
:mod:`instrec.run`), written after every epoch so an interrupted run continues to the same
final weights. Weights, Adam moments and RNG states are tensors; counters, history and the
dropout streams are JSON, checked against :data:`instrec.run.RESUME_SCHEMA` when read back."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from instrec._io import InstrecError, atomic_write_json
from instrec._jsonread import read_json
from instrec.run import RESUME_SCHEMA, RESUME_STATE, RESUME_WEIGHTS, load_tensors, save_tensors


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
    try:
        state = read_json(run_dir / RESUME_STATE, RESUME_SCHEMA)
    except InstrecError as exc:
        source, _, problem = str(exc).partition(": ")
        raise InstrecError(f"{source}: damaged ({problem}); start the run again with --overwrite") from None
    tensors = load_tensors(run_dir / RESUME_WEIGHTS)
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    slots: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            slots.setdefault(int(pid), {})[name] = value
    opt_state = {"state": slots, "param_groups": state.pop("param_groups")}
    if "rng.torch" not in tensors or "rng.generator" not in tensors:
        raise InstrecError(f"{run_dir / RESUME_WEIGHTS}: no RNG states; start the run again with --overwrite")
    rngs = {"torch": tensors["rng.torch"], "generator": tensors["rng.generator"], "masks": state.pop("mask_rngs", None)}
    if rngs["masks"] is None:
        raise InstrecError(f"{run_dir / RESUME_STATE}: no dropout stream states (written by an older instrec); "
                           "start the run again with --overwrite")
    return state, model_state, opt_state, rngs

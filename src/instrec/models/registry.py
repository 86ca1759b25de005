"""Every model instrec knows, with what it can do: the one place a model name is looked up.

A :class:`ModelSpec` says how a model is built and loaded and which capabilities the rest
of instrec may rely on:

* ``neural``: trained by gradient descent on batches (False: fitted once, the forest);
* ``variable_length``: accepts clips of any number of frames (False: the training length only);
* ``frame_output``: per-frame class probabilities (per-second tags, localisation);
* ``attention``: per-frame attention weights beside the frame probabilities;
* ``stacked``: the lockstep implementation (:mod:`instrec.models.stacked`), or None;
* ``cost``: rough training time per run relative to ``bilstm-att`` (task scheduling).

Classes are named by import path and imported on first use: the command line reads the
names and capabilities of this table, and importing torch would take its start-up from
about 0.1 s to 1.1 s (measured on the 2-core development machine).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Mapping

from instrec._io import InstrecError


def _resolve(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ModelSpec:
    """A model's constructor and capabilities (see the module docstring)."""

    name: str
    class_path: str
    description: str
    variable_length: bool = True
    neural: bool = True
    frame_output: bool = False
    attention: bool = False
    stacked_path: str | None = None
    cost: float = 1.0

    @property
    def cls(self) -> type:
        return _resolve(self.class_path)

    @property
    def stacked(self) -> type | None:
        return _resolve(self.stacked_path) if self.stacked_path else None


_M = "instrec.models."
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("bilstm-att", _M + "bilstm_att.BiLSTMAttention", "attention BiLSTM of the paper",
              frame_output=True, attention=True, stacked_path=_M + "stacked.StackedBiLSTMAttention"),
    ModelSpec("att", _M + "att.GururaniAttention", "Gururani et al.'s attention model",
              frame_output=True, attention=True, stacked_path=_M + "stacked.StackedGururaniAttention"),
    ModelSpec("fc", _M + "baselines.FullyConnected", "fully connected on the flattened clip",
              variable_length=False, cost=0.3),
    ModelSpec("fc-t", _M + "baselines.FrameFullyConnected", "per-frame fully connected, mean over time",
              frame_output=True, cost=0.6),
    ModelSpec("rnn", _M + "baselines.BiGRU", "BiGRU, last state", cost=1.2),
    ModelSpec("rf", _M + "forest.RandomForestBaseline", "per-instrument random forests on the time-mean feature",
              neural=False, cost=0.2),
)}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
NEURAL_MODELS: tuple[str, ...] = tuple(n for n, s in MODELS.items() if s.neural)
FRAME_MODELS: tuple[str, ...] = tuple(n for n, s in MODELS.items() if s.frame_output)
STACKABLE_MODELS: tuple[str, ...] = tuple(n for n, s in MODELS.items() if s.stacked_path)


def model_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; a clear error for an unknown name."""
    if name not in MODELS:
        raise InstrecError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return MODELS[name]


def build_model(name: str, n_classes: int = 20, n_features: int = 128, n_frames: int = 10, **kw: Any) -> Any:
    """Build neural model ``name`` (a torch module); extra keyword arguments go to its constructor.

    n_classes: output classes; n_features: feature size per frame; n_frames: frames per
    training clip (used by the fixed-length ``fc``, recorded by all)."""
    spec = model_spec(name)
    if not spec.neural:
        raise InstrecError(f"model {name!r} is not a neural network; it is fitted, not built")
    return spec.cls(n_classes=n_classes, n_features=n_features, n_frames=n_frames, **kw)


def model_from_tensors(name: str, config: Mapping[str, Any], tensors: Mapping[str, Any],
                       source: str = "<weights>") -> Any:
    """Rebuild a trained model from its constructor ``config`` and saved torch ``tensors``, in eval mode."""
    spec = model_spec(name)
    if not spec.neural:  # the forest's arrays use NaN as a marker; it checks them itself
        return spec.cls.from_arrays({k: v.numpy() for k, v in tensors.items()}, source,
                                    n_classes=config.get("n_classes"), n_features=config.get("n_features"))
    _check_finite(tensors, source)
    _check_shapes(name, config, tensors, source)
    model = build_model(name, **config)
    try:
        model.load_state_dict(dict(tensors), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "shape or name mismatch"
        raise InstrecError(f"{source}: weights do not fit model {name!r} ({first})") from None
    model.eval()
    return model


def _check_finite(tensors: Mapping[str, Any], source: str) -> None:
    """Refuse weights holding NaN or Inf: they would tag every file with NaN."""
    import torch

    for key, value in tensors.items():
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise InstrecError(f"{source}: tensor {key!r} holds NaN or Inf; the weights are damaged")


def _check_shapes(name: str, config: Mapping[str, Any], tensors: Mapping[str, Any], source: str) -> None:
    """Build the model on torch's ``meta`` device (no memory) and compare every parameter
    shape with the saved weights *before* allocating: a damaged or edited constructor config
    (an absurd hidden size, say) is an error naming the weights, never terabytes asked for.
    The saved file bounds what is allocated afterwards."""
    import torch

    try:  # fork_rng: building must not move the global RNG that training or dropout use
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            skeleton = build_model(name, **config)
    except InstrecError:
        raise
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise InstrecError(f"{source}: model_config {dict(config)!r} cannot build model {name!r} ({exc})") from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in tensors.items()}
    missing = sorted(set(expected) - set(saved))
    if missing:
        raise InstrecError(f"{source}: weights do not fit model {name!r} with its model_config "
                           f"(no tensor {missing[0]})")
    wrong = [k for k in expected if expected[k] != saved[k]]
    if wrong:
        k = wrong[0]
        raise InstrecError(f"{source}: weights do not fit model {name!r} with its model_config "
                           f"({k}: saved {saved[k]}, config asks for {expected[k]})")


def model_tensors(model: Any) -> dict[str, Any]:
    """What a checkpoint stores of ``model``: its state dict, or the forest's exported arrays."""
    return model.to_arrays() if hasattr(model, "to_arrays") else model.state_dict()

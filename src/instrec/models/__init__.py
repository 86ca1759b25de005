"""Model registry: ``build_model(name, **config)`` for the neural models.

Every model maps (B, T, F) feature batches to a :class:`ModelOutput` of probabilities,
has a class attribute ``variable_length`` (False: only the training clip length is
accepted) and a JSON-serialisable ``config`` dict such that
``build_model(name, **model.config)`` rebuilds the same architecture.

The random-forest baseline (sklearn, not a torch module) is
:class:`instrec.models.forest.RandomForestBaseline`.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from instrec.models.att import GururaniAttention
from instrec.models.baselines import BiGRU, FrameFullyConnected, FullyConnected
from instrec.models.bilstm_att import BiLSTMAttention
from instrec.models.output import ModelOutput

__all__ = ["MODEL_NAMES", "MODELS", "ModelOutput", "build_model"]

MODEL_NAMES: tuple[str, ...] = ("bilstm-att", "att", "fc", "fc-t", "rnn")

MODELS: dict[str, type[nn.Module]] = {
    "bilstm-att": BiLSTMAttention,
    "att": GururaniAttention,
    "fc": FullyConnected,
    "fc-t": FrameFullyConnected,
    "rnn": BiGRU,
}


def build_model(name: str, n_classes: int = 20, n_features: int = 128, n_frames: int = 10,
                **kw: Any) -> nn.Module:
    """Build model ``name`` (one of MODEL_NAMES); extra keyword arguments go to its constructor.

    n_classes: output classes; n_features: feature size per frame; n_frames: frames per
    training clip (used by the fixed-length ``fc``, recorded by all).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return MODELS[name](n_classes=n_classes, n_features=n_features, n_frames=n_frames, **kw)

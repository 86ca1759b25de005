"""Shared model output type and the decision-level attention pooling head.

Shapes: ``B`` clips in a batch, ``T`` time steps (one VGGish frame per second),
``C`` classes, ``D`` feature/hidden size.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

#: Attention weights are clipped into [ATT_EPS, 1 - ATT_EPS] before normalisation
#: (Kong et al. 2018) so that no time step can get exactly zero mass and the
#: normaliser can never be zero.
ATT_EPS = 1e-7


class ModelOutput(NamedTuple):
    """What every neural model returns; all values are probabilities in [0, 1].

    clip: (B, C) clip-level presence probability per class.
    frame: (B, T, C) per-time-step class probabilities, or None for models without them.
    attention: (B, T, C) attention weights, each (clip, class) column sums to 1 over T,
        or None for models without attention.
    """

    clip: torch.Tensor
    frame: torch.Tensor | None
    attention: torch.Tensor | None


class AttentionPooling(nn.Module):
    """Kong et al. (2018) decision-level single attention.

    Per time step, a class branch ``sigmoid(W_c h + b_c)`` and an attention branch
    ``sigmoid(W_a h + b_a)`` (clipped to [1e-7, 1-1e-7] and normalised over time);
    the clip probability is the attention-weighted sum of the class branch. Both
    branches share one Linear layer of 2C outputs ([:C] class, [C:] attention), which
    is the same parameter count as two C-output layers and one matmul fewer.
    """

    def __init__(self, in_features: int, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.proj = nn.Linear(in_features, 2 * n_classes)

    def forward(self, h: torch.Tensor) -> ModelOutput:
        """h: (B, T, in_features) -> ModelOutput(clip (B,C), frame (B,T,C), attention (B,T,C))."""
        cla, att = torch.sigmoid(self.proj(h)).split(self.n_classes, dim=-1)
        att = att.clamp(ATT_EPS, 1.0 - ATT_EPS)
        att = att / att.sum(dim=1, keepdim=True)
        # A convex combination of values in [0, 1] can overshoot 1 by rounding only.
        clip = (att * cla).sum(dim=1).clamp(0.0, 1.0)
        return ModelOutput(clip=clip, frame=cla, attention=att)


def check_input(x: torch.Tensor, n_features: int, model: str) -> None:
    """Raise ValueError unless ``x`` is a (B, T, n_features) batch with T >= 1."""
    if x.dim() != 3 or x.shape[2] != n_features or x.shape[1] < 1:
        raise ValueError(
            f"{model} expects input of shape (batch, frames, {n_features}), got {tuple(x.shape)}"
        )

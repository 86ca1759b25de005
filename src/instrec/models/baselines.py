"""Neural baselines of Gururani et al. (ISMIR 2019): fully connected (fc), per-frame fully
connected with temporal mean (fc-t) and a bidirectional GRU (rnn).

Inputs are (B, T, F) VGGish frames; outputs are ModelOutput probabilities.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from instrec.models.dropout import Dropout
from instrec.models.output import ModelOutput, check_input


def _mlp(n_in: int, hidden: Sequence[int], n_out: int, dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> Dropout for each hidden size, then a final Linear (logits)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.ReLU(), Dropout(dropout)]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class FullyConnected(nn.Module):
    """fc: the flattened (T*F) clip -> 512 -> 512 -> 128 -> C, sigmoid.

    Fixed length: refuses inputs whose frame count differs from ``n_frames`` (so it
    cannot take concatenated clips). 986,772 parameters with the defaults, as in
    Gururani et al.; dropout 0.5 as in their code.
    """


    def __init__(self, n_classes: int = 20, n_features: int = 128, n_frames: int = 10,
                 hidden: Sequence[int] = (512, 512, 128), dropout: float = 0.5) -> None:
        super().__init__()
        self.config = dict(n_classes=n_classes, n_features=n_features, n_frames=n_frames,
                           hidden=list(hidden), dropout=dropout)
        self.net = _mlp(n_frames * n_features, hidden, n_classes, dropout)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        check_input(x, self.config["n_features"], "fc")
        expected = self.config["n_frames"]
        if x.shape[1] != expected:
            raise ValueError(
                f"fc is a fixed-length model: expected {expected} frames per clip, got {x.shape[1]} "
                "(it cannot take concatenated or cropped clips)"
            )
        return ModelOutput(clip=torch.sigmoid(self.net(x.flatten(1))), frame=None, attention=None)


class FrameFullyConnected(nn.Module):
    """fc-t: the same MLP applied to every frame (F -> 512 -> 512 -> 128 -> C, sigmoid);
    the clip probability is the mean of the frame probabilities. Any T >= 1.
    """


    def __init__(self, n_classes: int = 20, n_features: int = 128, n_frames: int = 10,
                 hidden: Sequence[int] = (512, 512, 128), dropout: float = 0.5) -> None:
        super().__init__()
        self.config = dict(n_classes=n_classes, n_features=n_features, n_frames=n_frames,
                           hidden=list(hidden), dropout=dropout)
        self.net = _mlp(n_features, hidden, n_classes, dropout)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        check_input(x, self.config["n_features"], "fc-t")
        frame = torch.sigmoid(self.net(x))
        return ModelOutput(clip=frame.mean(dim=1), frame=frame, attention=None)


class BiGRU(nn.Module):
    """rnn: bidirectional GRU (64 units per direction) -> final state -> Linear -> sigmoid.

    The clip summary concatenates the forward direction's output at the last frame and
    the backward direction's output at the first frame (each has then seen the whole
    clip). Defaults follow Gururani et al.'s code: 3 layers, dropout 0.5 between
    layers, 226,068 parameters. Any T >= 1.
    """


    def __init__(self, n_classes: int = 20, n_features: int = 128, n_frames: int = 10,
                 hidden: int = 64, num_layers: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.config = dict(n_classes=n_classes, n_features=n_features, n_frames=n_frames,
                           hidden=hidden, num_layers=num_layers, dropout=dropout)
        self.gru = nn.GRU(n_features, hidden, num_layers=num_layers, batch_first=True,
                          bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)
        self.out = nn.Linear(2 * hidden, n_classes)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        check_input(x, self.config["n_features"], "rnn")
        seq, _ = self.gru(x)
        hid = self.config["hidden"]
        last = torch.cat([seq[:, -1, :hid], seq[:, 0, hid:]], dim=-1)
        return ModelOutput(clip=torch.sigmoid(self.out(last)), frame=None, attention=None)

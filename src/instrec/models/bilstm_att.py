"""The paper's model: BiLSTM (64 units per direction, dropout 0.2, recurrent dropout 0.2)
followed by Kong et al. (2018) decision-level attention."""
from __future__ import annotations

import torch
from torch import nn

from instrec.models.lstm import BiLSTM
from instrec.models.output import AttentionPooling, ModelOutput, check_input


class BiLSTMAttention(nn.Module):
    """Attention BiLSTM; input (B, T, n_features) VGGish frames, any T >= 1.

    Output: ModelOutput with clip (B, C), frame (B, T, C) class-branch probabilities
    and attention (B, T, C) weights summing to 1 over T.
    """


    def __init__(self, n_classes: int = 20, n_features: int = 128, n_frames: int = 10,
                 hidden: int = 64, dropout: float = 0.2, recurrent_dropout: float = 0.2) -> None:
        super().__init__()
        self.config = dict(n_classes=n_classes, n_features=n_features, n_frames=n_frames,
                           hidden=hidden, dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.lstm = BiLSTM(n_features, hidden, dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.head = AttentionPooling(2 * hidden, n_classes)

    def draw_masks(self, batch: int, n_frames: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The dropout masks a training forward pass of ``batch`` clips draws (see
        BiLSTM.draw_masks; they do not depend on ``n_frames``)."""
        return self.lstm.draw_masks(batch)

    def forward(self, x: torch.Tensor, masks: tuple[torch.Tensor | None, ...] | None = None) -> ModelOutput:
        """``masks``: from :meth:`draw_masks`, or None to draw them here."""
        check_input(x, self.config["n_features"], "bilstm-att")
        return self.head(self.lstm(x, masks))
